"""SUIT numbers, each written once, with the section (and registry) it comes from.

Sources (specs/): draft-ietf-suit-manifest-37 Section 8 and IANA Section 11 ("manifest"),
draft-ietf-suit-trust-domains-12 Sections 5-7 and 9 ("TD"), draft-ietf-suit-report-19
Sections 3, 4, 6 and IANA 9.5-9.8 ("report"), draft-ietf-suit-firmware-encryption-25
Section 4 ("encryption"), draft-ietf-suit-mti-23 Section 3 ("MTI"), RFC 9052/9053 for COSE.
Every table maps number -> readable name (the draft's name without its "suit-" prefix);
`*_BY_NAME` is the reverse.
"""

from collections.abc import Mapping
from types import MappingProxyType


def _reverse(table: Mapping[int, str]) -> Mapping[str, int]:
    return MappingProxyType({name: number for number, name in table.items()})


# CBOR tags: manifest 11 / Appendix A; RFC 9052 Table 1.
TAG_ENVELOPE = 107
TAG_MANIFEST = 1070
TAG_COSE_SIGN = 98
TAG_COSE_SIGN1 = 18
TAG_COSE_MAC = 97
TAG_COSE_MAC0 = 17
TAG_COSE_ENCRYPT = 96
TAG_COSE_ENCRYPT0 = 16
TAG_CBOR_PEN = 112  # manifest 8.4.8.3: vendor id as a CBOR Private Enterprise Number

# Envelope members (manifest 11.1; TD 9 for delegation and dependency members).
ENVELOPE_DELEGATION = 1
ENVELOPE_AUTHENTICATION_WRAPPER = 2
ENVELOPE_MANIFEST = 3

# Manifest members (manifest 11.2; TD 5.2.1, 5.5, 6, 7.1).
MANIFEST_VERSION = 1
MANIFEST_SEQUENCE_NUMBER = 2
MANIFEST_COMMON = 3
MANIFEST_REFERENCE_URI = 4
MANIFEST_COMPONENT_ID = 5
MANIFEST_MEMBER_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "manifest-version",
        2: "manifest-sequence-number",
        3: "common",
        4: "reference-uri",
        5: "manifest-component-id",
        7: "validate",
        8: "load",
        9: "invoke",
        15: "dependency-resolution",
        16: "payload-fetch",
        18: "candidate-verification",
        20: "install",
        23: "text",
        24: "uninstall",
    }
)
MANIFEST_VERSION_1 = 1  # manifest 8.4.1: the only version

# Command sequences in the manifest (manifest 8.4.6, TD 5.5 / 6 / 7.1), by key.
COMMAND_SEQUENCE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        7: "validate",
        8: "load",
        9: "invoke",
        15: "dependency-resolution",
        16: "payload-fetch",
        18: "candidate-verification",
        20: "install",
        24: "uninstall",
    }
)
COMMAND_SEQUENCE_BY_NAME = _reverse(COMMAND_SEQUENCE_NAMES)
TEXT = 23
# Members that may be severed: replaced in the manifest by a SUIT_Digest over the bstr and
# carried in the envelope under the same key (manifest 8.4.12, 8.6; TD 9 adds 15 and 18).
SEVERABLE_MEMBERS: Mapping[int, str] = MappingProxyType(
    {
        15: "dependency-resolution",
        16: "payload-fetch",
        18: "candidate-verification",
        20: "install",
        23: "text",
    }
)

# Common members (manifest 11.3; TD 5.2.2).
COMMON_DEPENDENCIES = 1
COMMON_COMPONENTS = 2
COMMON_SHARED_SEQUENCE = 4
DEPENDENCY_PREFIX = 1  # TD 5.2.2: key inside SUIT_Dependency_Metadata

# Commands (manifest 11.4 "SUIT Commands"; TD 9 adds 7, 8, 11, 19, 33).
COMMAND_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "condition-vendor-identifier",
        2: "condition-class-identifier",
        3: "condition-image-match",
        5: "condition-component-slot",
        6: "condition-check-content",
        7: "condition-dependency-integrity",
        8: "condition-is-dependency",
        11: "directive-process-dependency",
        12: "directive-set-component-index",
        14: "condition-abort",
        15: "directive-try-each",
        18: "directive-write",
        19: "directive-set-parameters",
        20: "directive-override-parameters",
        21: "directive-fetch",
        22: "directive-copy",
        23: "directive-invoke",
        24: "condition-device-identifier",
        31: "directive-swap",
        32: "directive-run-sequence",
        33: "directive-unlink",
    }
)
COMMAND_BY_NAME = _reverse(COMMAND_NAMES)
CONDITION_VENDOR_IDENTIFIER = 1
CONDITION_CLASS_IDENTIFIER = 2
CONDITION_IMAGE_MATCH = 3
DIRECTIVE_PROCESS_DEPENDENCY = 11
DIRECTIVE_SET_COMPONENT_INDEX = 12
DIRECTIVE_TRY_EACH = 15
DIRECTIVE_WRITE = 18
DIRECTIVE_SET_PARAMETERS = 19
DIRECTIVE_OVERRIDE_PARAMETERS = 20
DIRECTIVE_FETCH = 21
DIRECTIVE_RUN_SEQUENCE = 32
DIRECTIVE_UNLINK = 33
# Commands whose argument is a parameter map / an index / nested sequences; all other
# standard commands take a SUIT_Rep_Policy (uint). Negative ids are suit-command-custom.
PARAMETER_COMMANDS = frozenset({DIRECTIVE_OVERRIDE_PARAMETERS, DIRECTIVE_SET_PARAMETERS})

# Reporting policy bits (manifest 8.4.7): SUIT_Rep_Policy = uint .bits suit-reporting-bits.
REPORT_RECORD_ON_SUCCESS = 1 << 0
REPORT_RECORD_ON_FAILURE = 1 << 1
REPORT_SYSINFO_ON_SUCCESS = 1 << 2
REPORT_SYSINFO_ON_FAILURE = 1 << 3
REPORT_ALL = 15  # the value the TEEP Appendix E examples use after every command

# Parameters (manifest 11.5; encryption 4 adds 19).
PARAMETER_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "vendor-identifier",
        2: "class-identifier",
        3: "image-digest",
        5: "component-slot",
        12: "strict-order",
        13: "soft-failure",
        14: "image-size",
        18: "content",
        19: "encryption-info",
        21: "uri",
        22: "source-component",
        23: "invoke-args",
        24: "device-identifier",
        25: "fetch-arguments",
    }
)
PARAMETER_BY_NAME = _reverse(PARAMETER_NAMES)
PARAMETER_VENDOR_IDENTIFIER = 1
PARAMETER_CLASS_IDENTIFIER = 2
PARAMETER_IMAGE_DIGEST = 3
PARAMETER_IMAGE_SIZE = 14
PARAMETER_CONTENT = 18
PARAMETER_ENCRYPTION_INFO = 19
PARAMETER_URI = 21
# Value types of the standard parameters (manifest Appendix A $$SUIT_Parameters; encryption 4).
# vendor-identifier (UUID or CBOR PEN) and image-digest (bstr .cbor SUIT_Digest) are special.
BSTR_PARAMETERS = frozenset({2, 18, 19, 23, 24, 25})  # class/device ids, content, enc-info, args
UINT_PARAMETERS = frozenset({5, 14, 22})  # component-slot, image-size, source-component
BOOL_PARAMETERS = frozenset({12, 13})  # strict-order, soft-failure
TEXT_PARAMETERS = frozenset({21})  # uri

# Text (manifest 11.6 manifest-level keys, 11.7 per-component keys).
TEXT_NAMES: Mapping[int, str] = MappingProxyType(
    {1: "manifest-description", 2: "update-description", 3: "json-source", 4: "yaml-source"}
)
TEXT_COMPONENT_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "vendor-name",
        2: "model-name",
        3: "vendor-domain",
        4: "model-info",
        5: "component-description",
        6: "component-version",
    }
)
TEXT_BY_NAME = _reverse(TEXT_NAMES)
TEXT_COMPONENT_BY_NAME = _reverse(TEXT_COMPONENT_NAMES)

# Digest algorithms (manifest 10; COSE Algorithms registry).
SHA256 = -16
DIGEST_ALGORITHM_NAMES: Mapping[int, str] = MappingProxyType(
    {-16: "sha-256", -18: "shake128", -43: "sha-384", -44: "sha-512", -45: "shake256"}
)

# COSE algorithms used by SUIT (MTI 3; RFC 9053; RFC 9864 for -9 / -19).
ES256 = -7
EDDSA = -8
ESP256 = -9
ED25519 = -19
HMAC_256_256 = 5
A128KW = -3
A192KW = -4
A256KW = -5
ECDH_ES_A128KW = -29
A128GCM = 1
A192GCM = 2
A256GCM = 3
CHACHA20_POLY1305 = 24
A128CTR = -65534
A192CTR = -65533
A256CTR = -65532
COSE_ALGORITHM_NAMES: Mapping[int, str] = MappingProxyType(
    {
        ES256: "ES256",
        EDDSA: "EdDSA",
        ESP256: "ESP256",
        ED25519: "Ed25519",
        HMAC_256_256: "HMAC 256/256",
        A128KW: "A128KW",
        A192KW: "A192KW",
        A256KW: "A256KW",
        ECDH_ES_A128KW: "ECDH-ES+A128KW",
        A128GCM: "A128GCM",
        A192GCM: "A192GCM",
        A256GCM: "A256GCM",
        CHACHA20_POLY1305: "ChaCha20/Poly1305",
        A128CTR: "A128CTR",
        A192CTR: "A192CTR",
        A256CTR: "A256CTR",
        -16: "SHA-256",
    }
)
# SUIT_Authentication_Block algorithms we verify: signatures through apps.teep.wire.cose,
# HMAC 256/256 (MTI 3.1) locally.
SIGNATURE_ALGORITHMS = (ESP256, ED25519, ES256, EDDSA)

# COSE header labels (RFC 9052 3.1) and COSE_Key labels (RFC 9052 7, RFC 9053 7.1).
HEADER_ALG = 1
HEADER_KID = 4
HEADER_IV = 5
HEADER_EPHEMERAL_KEY = -1
KEY_KTY = 1
KEY_KID = 2
KEY_CRV = -1
KEY_X = -2
KEY_Y = -3
KEY_D = -4
KTY_OKP = 1
KTY_EC2 = 2
CRV_P256 = 1
CRV_X25519 = 4

# KDF context "other" strings (encryption 5.2.4; TEEP 8.2).
CONTEXT_SUIT_PAYLOAD = b"SUIT Payload Encryption"
CONTEXT_SUIT_REPORT = b"SUIT Report Encryption"
CONTEXT_EAT = b"EAT Encryption"

# SUIT COSE profiles (MTI 3; [digest, auth, key exchange, content encryption]).
SUIT_COSE_PROFILES: Mapping[str, tuple[int, int, int, int]] = MappingProxyType(
    {
        "suit-sha256-hmac-a128kw-a128ctr": (SHA256, HMAC_256_256, A128KW, A128CTR),
        "suit-sha256-esp256-ecdh-a128ctr": (SHA256, ESP256, ECDH_ES_A128KW, A128CTR),
        "suit-sha256-ed25519-ecdh-a128ctr": (SHA256, ED25519, ECDH_ES_A128KW, A128CTR),
        "suit-sha256-esp256-ecdh-a128gcm": (SHA256, ESP256, ECDH_ES_A128KW, A128GCM),
        "suit-sha256-ed25519-ecdh-chacha-poly": (
            SHA256,
            ED25519,
            ECDH_ES_A128KW,
            CHACHA20_POLY1305,
        ),
        "suit-sha256-hsslms-a256kw-a256ctr": (SHA256, -46, A256KW, A256CTR),
    }
)

# SUIT report (report 4, 9.5): SUIT_Report map keys.
REPORT_REFERENCE = 99
REPORT_NONCE = 2
REPORT_RECORDS = 3
REPORT_RESULT = 4
REPORT_RESULT_CODE = 5
REPORT_RESULT_RECORD = 6
REPORT_RESULT_REASON = 7
REPORT_CAPABILITY_REPORT = 8
SYSTEM_COMPONENT_ID = 0  # report 4: key of the component id in system-property-claims

# SUIT_Report_Reasons (report 4.2, IANA 9.7).
REPORT_REASON_NAMES: Mapping[int, str] = MappingProxyType(
    {
        0: "ok",
        1: "cbor-parse",
        2: "cose-unsupported",
        3: "alg-unsupported",
        4: "unauthorised",
        5: "command-unsupported",
        6: "component-unsupported",
        7: "component-unauthorised",
        8: "parameter-unsupported",
        9: "severing-unsupported",
        10: "condition-failed",
        11: "operation-failed",
        12: "invoke-pending",
    }
)
REPORT_REASON_BY_NAME = _reverse(REPORT_REASON_NAMES)

# SUIT_Capability_Report keys (report 6, IANA 9.8).
CAPABILITY_NAMES: Mapping[int, str] = MappingProxyType(
    {
        1: "component",
        2: "command",
        3: "parameters",
        4: "crypt-algo",
        5: "envelope",
        6: "manifest",
        7: "common",
        8: "text",
        9: "text-component",
        10: "dependency",
    }
)
CAPABILITY_BY_NAME = _reverse(CAPABILITY_NAMES)
CAPABILITY_REQUIRED = (1, 2, 3, 4)  # report 6: component, command, parameters, crypt-algo
