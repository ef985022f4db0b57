"""Everything the codec encodes matches the draft's CDDL (cddl-verifier), in both numberings;
and the codec's rejections agree with the CDDL, except where the draft's prose says more.
"""

import cbor2
import pytest

from apps.teep.wire.errors import TeepDecodeError
from apps.teep.wire.messages import (
    ATTESTATION,
    EXTENSIONS,
    FRESHNESS_NONCE,
    FRESHNESS_TIMESTAMP,
    SUIT_REPORTS,
    TRUSTED_COMPONENTS,
    Error,
    QueryRequest,
    QueryResponse,
    RequestedTcInfo,
    Success,
    TeepEncodeError,
    Update,
    decode,
    encode,
    is_tagged_envelope,
)
from apps.teep.wire.numbering import CURRENT, PRE_26
from tests.conftest import _shared_dir
from tests.wire.cddl_validation import cddl_errors

VECTORS = _shared_dir() / "specs" / "vectors"


def _hex(name: str) -> bytes:
    return bytes.fromhex("".join((VECTORS / "teep" / name).read_text().split()))


# TEEP Appendix E envelopes, untagged as manifest-list carries them.
ENVELOPES = tuple(_hex(f"suit_{name}.hex") for name in ("uri", "integrated", "personalization"))
TC_ID = (b"TEEP-Device", b"SecureFS", bytes.fromhex("8D82573A926D4754935332DC29997F74"), b"ta")
TC_DIGEST = cbor2.dumps(
    [-16, bytes.fromhex("8CF71AC86AF31BE184EC7A05A411A8C3A14FD9B77A30D046397481469468ECE8")]
)
TOKEN = bytes(range(0xA0, 0xB0))
CHALLENGE = bytes(range(32))
# SUIT reports (draft-ietf-suit-report-19 Section 4): one unprotected success report, one failure
# report in a COSE_Sign1_Tagged.
_REFERENCE = ["https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit", [-16, bytes(32)]]
REPORT_OK = cbor2.dumps({99: _REFERENCE, 2: TOKEN, 3: [], 4: True})
_FAILED = {99: _REFERENCE, 2: TOKEN, 3: [], 4: {5: 3, 6: [[0], 7, 0, 0, {14: 20}], 7: 10}}
REPORT_SIGNED = cbor2.dumps(
    cbor2.CBORTag(18, [cbor2.dumps({1: -9}), {}, cbor2.dumps(_FAILED), bytes(64)])
)
SUITES = (((18, -9),), ((18, -19),))
PROFILES = ((-16, -9, -29, -65534), (-16, -19, -29, -65534), (-16, -9, -29, 1), (-16, -19, -29, 24))
EAT_FORMAT = "application/eat+cwt; eat_profile=urn:ietf:rfc:rfcXXXX"

REPRESENTATIVE = {
    "query-request-attestation-full": QueryRequest(
        supported_freshness_mechanisms=(FRESHNESS_NONCE, FRESHNESS_TIMESTAMP),
        challenge=CHALLENGE,
        versions=(0, 1),
        attestation_payload_format=EAT_FORMAT,
        attestation_payload=b"\xd2\x84...TAM's own EAT",
        suit_reports=(REPORT_OK, REPORT_SIGNED),
        supported_teep_cipher_suites=SUITES,
        supported_suit_cose_profiles=PROFILES,
        data_item_requested=ATTESTATION | TRUSTED_COMPONENTS | EXTENSIONS | SUIT_REPORTS,
    ),
    "query-request-token-minimal": QueryRequest(
        token=TOKEN,
        supported_teep_cipher_suites=SUITES[:1],
        supported_suit_cose_profiles=PROFILES[2:3],
        data_item_requested=TRUSTED_COMPONENTS,
    ),
    "query-request-no-items": QueryRequest(
        token=bytes(64),
        supported_teep_cipher_suites=SUITES[1:],
        supported_suit_cose_profiles=PROFILES,
        data_item_requested=0,
    ),
    "query-response-full": QueryResponse(
        token=TOKEN,
        selected_version=0,
        attestation_payload_format="application/eat+cwt",
        attestation_payload=b"evidence",
        suit_reports=(REPORT_OK,),
        tc_list=({0: TC_ID, 3: TC_DIGEST, 14: 20}, {0: [b"other"], 2: bytes(16)}),
        requested_tc_list=(
            RequestedTcInfo(TC_ID, 3, True),
            RequestedTcInfo((b"app.wasm",)),
            RequestedTcInfo((), 0),
        ),
        unneeded_manifest_list=(TC_ID, (b"old",)),
        ext_list=(1, 2**32 - 1),
    ),
    "query-response-empty": QueryResponse(),
    "update-full": Update(
        token=bytes(8),
        unneeded_manifest_list=((b"old",),),
        manifest_list=ENVELOPES,
        attestation_payload_format=EAT_FORMAT,
        attestation_payload=b"attestation result",
        err_code=7,
        err_msg="attestation failed: \u00e9" * 5,
        err_lang="en-GB",
    ),
    "update-manifest": Update(token=TOKEN, manifest_list=ENVELOPES[:1]),
    "update-empty": Update(),
    "success-full": Success(token=TOKEN, msg="x" * 128, suit_reports=(REPORT_OK, REPORT_SIGNED)),
    "success-empty": Success(),
    "error-full": Error(
        token=TOKEN,
        err_msg="no common cipher suite",
        err_lang="de",
        supported_teep_cipher_suites=SUITES,
        supported_freshness_mechanisms=(FRESHNESS_NONCE,),
        supported_suit_cose_profiles=PROFILES[:1],
        challenge=bytes(512),
        versions=(0,),
        suit_reports=(REPORT_SIGNED,),
        err_code=5,
    ),
    "error-minimal": Error(err_code=1),
}

NUMBERINGS = pytest.mark.parametrize("numbering", [CURRENT, PRE_26], ids=["draft-26", "pre-26"])


@NUMBERINGS
@pytest.mark.parametrize("name", sorted(REPRESENTATIVE))
def test_encoded_message_matches_the_cddl(name, numbering):
    message = REPRESENTATIVE[name]
    data = encode(message, numbering)
    assert cddl_errors(data, numbering) == ()
    assert decode(data, numbering) == message


@NUMBERINGS
def test_every_err_code_matches_the_cddl(numbering):
    for code, code_name in numbering.err_code_names.items():
        for message in (Error(err_code=code), Update(err_code=code)):
            assert cddl_errors(encode(message, numbering), numbering) == (), code_name


def test_representative_messages_differ_between_numberings():
    # Sanity for the pre-26 schema: a -26 Success is not a pre-26 message.
    data = encode(REPRESENTATIVE["success-full"], CURRENT)
    assert cddl_errors(data, CURRENT) == () and cddl_errors(data, PRE_26) != ()


# --- rejections: decoder and CDDL agree ---------------------------------------------------------

SUITE = [[18, -9]]
PROFILE = [-16, -9, -29, 1]
_RTI = "options.requested-tc-list[0]"
BOTH_REJECT = {  # name: (payload, field named by the TeepDecodeError)
    "bare integer": (5, "message"),
    "options is an array": ([4, []], "options"),
    "unknown type 99": ([99, {}], "type"),
    "type as text": (["success", {}], "type"),
    "token 3 bytes": ([4, {19: b"abc"}], "options.token"),
    "token 65 bytes": ([4, {19: bytes(65)}], "options.token"),
    "token as text": ([4, {19: "abcdefgh"}], "options.token"),
    "option label is text": ([4, {"token": TOKEN}], "options"),
    "error without err-code": ([5, {}], "message"),
    "err-code 0 (reserved)": ([5, {}, 0], "err-code"),
    "err-code 115688 (unregistered)": ([5, {}, 115688], "err-code"),
    "err-code as text": ([5, {}, "1"], "err-code"),
    "update err-code 12": ([3, {22: 12}], "options.err-code"),
    "query-request with 4 elements": ([1, {19: TOKEN}, [SUITE], [PROFILE]], "message"),
    "query-request empty cipher suites": (
        [1, {19: TOKEN}, [], [PROFILE], 2],
        "supported-teep-cipher-suites",
    ),
    "query-request empty profiles": (
        [1, {19: TOKEN}, [SUITE], [], 2],
        "supported-suit-cose-profiles",
    ),
    "query-request data-item 16": ([1, {19: TOKEN}, [SUITE], [PROFILE], 16], "data-item-requested"),
    "query-request data-item as bool": (
        [1, {19: TOKEN}, [SUITE], [PROFILE], True],
        "data-item-requested",
    ),
    "versions 2**32": ([1, {19: TOKEN, 3: [2**32]}, [SUITE], [PROFILE], 2], "options.versions[0]"),
    "versions empty": ([1, {19: TOKEN, 3: []}, [SUITE], [PROFILE], 2], "options.versions"),
    "error challenge 7 bytes": ([5, {2: bytes(7)}, 1], "options.challenge"),
    "error challenge 513 bytes": ([5, {2: bytes(513)}, 1], "options.challenge"),
    "success msg 130 bytes of UTF-8": ([4, {10: "\u00e9" * 65}], "options.msg"),
    "success msg empty": ([4, {10: ""}], "options.msg"),
    "success msg as bytes": ([4, {10: b"ok"}], "options.msg"),
    "error err-lang 36 chars": ([5, {21: "x" * 36}, 1], "options.err-lang"),
    "requested-tc-info without component-id": ([2, {13: [{16: 1}]}], f"{_RTI}.component-id"),
    "requested-tc-info have-binary 1": (
        [2, {13: [{15: [b"a"], 16: 1, 17: 1}]}],
        f"{_RTI}.have-binary",
    ),
    "requested-tc-info sequence number -1": (
        [2, {13: [{15: [b"a"], 16: -1}]}],
        f"{_RTI}.tc-manifest-sequence-number",
    ),
    "requested-tc-info component-id of text": ([2, {13: [{15: ["a"]}]}], f"{_RTI}.component-id[0]"),
    "requested-tc-info unknown label": ([2, {13: [{15: [b"a"], 99: 0}]}], _RTI),
    "requested-tc-list empty": ([2, {13: []}], "options.requested-tc-list"),
    "tc-list claims without system-component-id": (
        [2, {7: [{3: TC_DIGEST}]}],
        "options.tc-list[0].system-component-id",
    ),
    "tc-list claims with only system-component-id": ([2, {7: [{0: [b"a"]}]}], "options.tc-list[0]"),
    "tc-list of bytes": ([2, {7: b"x"}], "options.tc-list"),
    "selected-version negative": ([2, {5: -1}], "options.selected-version"),
    "manifest-list item is an integer": ([3, {9: [cbor2.dumps(1)]}], "options.manifest-list[0]"),
    "manifest-list item is text": ([3, {9: ["envelope"]}], "options.manifest-list[0]"),
    "manifest-list item is not CBOR": ([3, {9: [b"\xff"]}], "options.manifest-list[0]"),
    "manifest-list item is a tagged array": (
        [3, {9: [cbor2.dumps(cbor2.CBORTag(107, [1, 2]))]}],
        "options.manifest-list[0]",
    ),
    "manifest-list item is a map under another tag": (
        [3, {9: [cbor2.dumps(cbor2.CBORTag(1070, cbor2.loads(ENVELOPES[0])))]}],
        "options.manifest-list[0]",
    ),
    "manifest-list not an array": ([3, {9: ENVELOPES[0]}], "options.manifest-list"),
    "suit-reports item is not CBOR": ([4, {18: [b"\x1f"]}], "options.suit-reports[0]"),
    "unneeded-manifest-list item is bytes": (
        [3, {14: [b"a"]}],
        "options.unneeded-manifest-list[0]",
    ),
    "cipher suite operation of 3 elements (libteep err2)": (
        [5, {1: [[[None, 3, None]]]}, 5],
        "options.supported-teep-cipher-suites[0][0]",
    ),
}


@pytest.mark.parametrize("name", sorted(BOTH_REJECT))
def test_decoder_and_cddl_both_reject(name):
    item, field = BOTH_REJECT[name]
    data = cbor2.dumps(item)
    with pytest.raises(TeepDecodeError) as caught:
        decode(data, CURRENT)
    assert caught.value.field == field
    assert cddl_errors(data, CURRENT) != ()


# --- where the codec deliberately differs from the bare CDDL (see messages.py) -----------------

STRICTER_THAN_CDDL = {
    # TEEP 4.2: token iff attestation bit clear; challenge and freshness absent when clear.
    "token with attestation bit (D.1)": ([1, {19: TOKEN}, [SUITE], [PROFILE], 1], "options.token"),
    "no token, no attestation bit": ([1, {}, [SUITE], [PROFILE], 2], "options.token"),
    "challenge with attestation bit clear": (
        [1, {19: TOKEN, 2: CHALLENGE}, [SUITE], [PROFILE], 2],
        "options.challenge",
    ),
    "freshness with attestation bit clear": (
        [1, {19: TOKEN, 20: [0]}, [SUITE], [PROFILE], 2],
        "options.supported-freshness-mechanisms",
    ),
    # TEEP 4.3: have-binary true needs tc-manifest-sequence-number.
    "have-binary without sequence number": (
        [2, {13: [{15: [b"a"], 17: True}]}],
        "options.requested-tc-list[0].tc-manifest-sequence-number",
    ),
}


@pytest.mark.parametrize("name", sorted(STRICTER_THAN_CDDL))
def test_prose_rules_beyond_the_cddl(name):
    item, field = STRICTER_THAN_CDDL[name]
    data = cbor2.dumps(item)
    assert cddl_errors(data, CURRENT) == ()
    with pytest.raises(TeepDecodeError) as caught:
        decode(data, CURRENT)
    assert caught.value.field == field


def test_cbor_framing_beyond_the_cddl():
    # Indefinite lengths are valid CBOR but refused by the codec (definite lengths only).
    indefinite = b"\x9f\x04\xa1\x13\x50" + TOKEN + b"\xff"
    assert cddl_errors(indefinite, CURRENT) == ()
    with pytest.raises(TeepDecodeError):
        decode(indefinite, CURRENT)


LOOSER_THAN_CDDL = {
    # Undefined $$...-extensions sockets make the CDDL's option maps closed; the codec treats
    # unknown labels as the extension points they are meant to be and reports them.
    "unknown option label": [4, {19: TOKEN, 99: "extension"}],
    "label defined for another message": [4, {19: TOKEN, 1: [SUITE]}],
    # $teep-cipher-suite, $suit-cose-profile, $freshness-mechanism are open sockets.
    "ES256 cipher suite (-7)": [5, {1: [[[18, -7]]]}, 5],
    "two-element SUIT profile": [5, {4: [[-16, -9]]}, 8],
    "unregistered freshness mechanism": [5, {20: [2]}, 3],
}


@pytest.mark.parametrize("name", sorted(LOOSER_THAN_CDDL))
def test_open_extension_points(name):
    data = cbor2.dumps(LOOSER_THAN_CDDL[name])
    assert cddl_errors(data, CURRENT) != ()
    message = decode(data, CURRENT)
    reencoded = encode(message, CURRENT)
    assert decode(reencoded, CURRENT) == message
    if message.ignored_labels:
        assert cddl_errors(reencoded, CURRENT) == ()  # ignored labels are not sent back


# --- SUIT_Envelope_Tagged in manifest-list: accepted from other TAMs, never sent ----------------


@pytest.mark.parametrize("numbering", [CURRENT, PRE_26], ids=lambda n: n.name)
def test_tagged_envelope_in_manifest_list_is_decoded_but_never_encoded(numbering):
    # AttesTAM and tamproto wrap manifest-list envelopes in tag 107; the TEEP CDDL says untagged.
    tagged = cbor2.dumps(cbor2.CBORTag(107, cbor2.loads(ENVELOPES[0])))
    options = {numbering.label("token"): TOKEN, numbering.label("manifest-list"): [tagged]}
    data = cbor2.dumps([numbering.message_type("update"), options])
    assert cddl_errors(data, numbering) != ()

    update = decode(data, numbering)

    assert update.manifest_list == (tagged,)
    assert is_tagged_envelope(update.manifest_list[0])
    assert not is_tagged_envelope(ENVELOPES[0])
    with pytest.raises(TeepEncodeError) as caught:
        encode(update, numbering)
    assert caught.value.field == "options.manifest-list[0]"
    assert "107" in caught.value.problem
