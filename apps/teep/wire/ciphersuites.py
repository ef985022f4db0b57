"""TEEP cipher suites, SUIT COSE profiles, freshness mechanisms and versions (TEEP 8, 9, 4.2).

A TEEP cipher suite is an ordered list of operations [cose-type, cose-alg] (TEEP 8.1
`cddl-cipher-suite`); here it is a tuple of (type, alg) tuples, e.g. ((18, -9),), and on the
wire the array [[18, -9]]. A SUIT COSE profile is [digest, auth, key-exchange, encryption]
(SUIT MTI Section 3; TEEP 8.2 `cddl-suit-cose-profile`), here a 4-tuple of COSE algorithm ids.
"""

from typing import Any, Iterable, Optional, Sequence

from apps.teep.wire.algorithms import ED25519, EDDSA, ES256, ESP256
from apps.teep.wire.errors import CoseError

Operation = tuple[int, int]
CipherSuite = tuple[Operation, ...]
SuitCoseProfile = tuple[int, int, int, int]

# TEEP 8.1: cose-sign1 = 18 (the COSE_Sign1 CBOR tag / CoAP Content-Format value).
COSE_SIGN1 = 18

# TEEP 8.1 teep-cipher-suite-sign1-esp256 / -ed25519: the TAM MUST support both.
SUITE_SIGN1_ESP256: CipherSuite = ((COSE_SIGN1, ESP256),)
SUITE_SIGN1_ED25519: CipherSuite = ((COSE_SIGN1, ED25519),)
# Their names and algorithms before mid-2025 (INDEX.md "What changed recently" 2); agents in
# the field still offer and sign with them (DESIGN.md "Cipher suites and agents from older drafts").
SUITE_SIGN1_ES256: CipherSuite = ((COSE_SIGN1, ES256),)
SUITE_SIGN1_EDDSA: CipherSuite = ((COSE_SIGN1, EDDSA),)

# What the TAM puts in supported-teep-cipher-suites (TEEP 4.2), ESP256 first.
TAM_OFFERED_SUITES: tuple[CipherSuite, ...] = (SUITE_SIGN1_ESP256, SUITE_SIGN1_ED25519)
# What the TAM accepts from an Agent.
TAM_ACCEPTED_SUITES: tuple[CipherSuite, ...] = TAM_OFFERED_SUITES + (
    SUITE_SIGN1_ES256,
    SUITE_SIGN1_EDDSA,
)

# SUIT COSE profiles (SUIT MTI 3.2-3.5, IANA "COSE SUIT Algorithm Profiles"); TEEP 8.2: the TAM
# MUST support these four. Ids: SHA-256 -16, ECDH-ES+A128KW -29, A128CTR -65534, A128GCM 1,
# ChaCha20/Poly1305 24.
SUIT_SHA256_ESP256_ECDH_A128CTR: SuitCoseProfile = (-16, ESP256, -29, -65534)
SUIT_SHA256_ED25519_ECDH_A128CTR: SuitCoseProfile = (-16, ED25519, -29, -65534)
SUIT_SHA256_ESP256_ECDH_A128GCM: SuitCoseProfile = (-16, ESP256, -29, 1)
SUIT_SHA256_ED25519_ECDH_CHACHA_POLY: SuitCoseProfile = (-16, ED25519, -29, 24)

# Offered in this order: the AEAD profile first (SUIT MTI 4.2 on AES-CTR's lack of integrity;
# teep-wasm-demo's QueryRequest offers exactly [-16, -9, -29, 1]).
TAM_SUIT_COSE_PROFILES: tuple[SuitCoseProfile, ...] = (
    SUIT_SHA256_ESP256_ECDH_A128GCM,
    SUIT_SHA256_ESP256_ECDH_A128CTR,
    SUIT_SHA256_ED25519_ECDH_A128CTR,
    SUIT_SHA256_ED25519_ECDH_CHACHA_POLY,
)

# Pre-2025 spellings with ES256 / EdDSA, as libteep still offers them
# (../interop-vectors/libteep/testfiles/query_request.md). Not offered; callers may accept them
# by passing ours=TAM_SUIT_COSE_PROFILES + LEGACY_SUIT_COSE_PROFILES.
SUIT_SHA256_ES256_ECDH_A128CTR: SuitCoseProfile = (-16, ES256, -29, -65534)
SUIT_SHA256_EDDSA_ECDH_A128CTR: SuitCoseProfile = (-16, EDDSA, -29, -65534)
LEGACY_SUIT_COSE_PROFILES: tuple[SuitCoseProfile, ...] = (
    SUIT_SHA256_ES256_ECDH_A128CTR,
    SUIT_SHA256_EDDSA_ECDH_A128CTR,
)

# TEEP 9 / 14.7 freshness mechanisms; nonce is mandatory to implement.
FRESHNESS_NONCE = 0
FRESHNESS_TIMESTAMP = 1

# TEEP 4.2 versions: 0 is the protocol of this draft; absent means [0].
SUPPORTED_VERSIONS: tuple[int, ...] = (0,)

# Same algorithm under two identifiers: with a P-256 key ES256 computes ESP256, with an
# Ed25519 key EdDSA computes Ed25519. Fully specified id first.
_EQUIVALENT_ALGORITHMS: dict[int, tuple[int, ...]] = {
    ESP256: (ESP256, ES256),
    ES256: (ESP256, ES256),
    ED25519: (ED25519, EDDSA),
    EDDSA: (ED25519, EDDSA),
}


def _is_int(value: Any) -> bool:
    return type(value) is int


def suite_from_wire(obj: Any) -> CipherSuite:
    """[[18, -9]] (or a tuple form) -> ((18, -9),); CoseError if it is not [+ [int, int]]."""
    if not isinstance(obj, (list, tuple)) or not obj:
        raise CoseError(f"cipher suite must be a non-empty array of operations, not {obj!r}")
    operations = []
    for operation in obj:
        if (
            not isinstance(operation, (list, tuple))
            or len(operation) != 2
            or not all(_is_int(value) for value in operation)
        ):
            raise CoseError(
                f"cipher suite operation must be [cose-type, cose-alg] integers, not {operation!r}"
            )
        operations.append((operation[0], operation[1]))
    return tuple(operations)


def suite_to_wire(suite: Sequence[Sequence[int]]) -> list[list[int]]:
    """((18, -9),) -> [[18, -9]], the CBOR form of TEEP 8.1."""
    return [list(operation) for operation in suite_from_wire(suite)]


def select_cipher_suite(
    peer_suites: Optional[Iterable[Any]], ours: Sequence[CipherSuite] = TAM_ACCEPTED_SUITES
) -> Optional[CipherSuite]:
    """The first of the peer's suites (in its order of preference) that we accept, or None.

    Malformed entries in the peer's list are skipped rather than fatal, so an agent from an
    older draft gets a clean ERR_UNSUPPORTED_CIPHER_SUITES rather than a crash.
    """
    if not isinstance(peer_suites, (list, tuple)):
        return None
    accepted = {suite_from_wire(suite) for suite in ours}
    for candidate in peer_suites:
        try:
            suite = suite_from_wire(candidate)
        except CoseError:
            continue
        if suite in accepted:
            return suite
    return None


def suite_for_algorithm(alg: int) -> CipherSuite:
    """The COSE_Sign1 suite of a signature algorithm we accept: -9 -> ((18, -9),)."""
    suite = ((COSE_SIGN1, alg),)
    if not _is_int(alg) or suite not in TAM_ACCEPTED_SUITES:
        raise CoseError(f"no TEEP cipher suite for algorithm {alg!r}")
    return suite


def algorithm_of_suite(suite: Any) -> int:
    """The signature algorithm of a single-operation COSE_Sign1 suite: ((18, -9),) -> -9."""
    operations = suite_from_wire(suite)
    if len(operations) != 1 or operations[0][0] != COSE_SIGN1:
        raise CoseError(f"cipher suite {suite!r} is not a single COSE_Sign1 operation")
    return operations[0][1]


def select_version(
    peer_versions: Optional[Iterable[Any]], ours: Sequence[int] = SUPPORTED_VERSIONS
) -> Optional[int]:
    """The first of the peer's versions we support; an absent list means [0] (TEEP 4.2, 4.6)."""
    if peer_versions is None:
        peer_versions = [0]
    if not isinstance(peer_versions, (list, tuple)):
        return None
    for version in peer_versions:
        if _is_int(version) and version in ours:
            return version
    return None


def negotiate_suit_profile(
    peer_profiles: Optional[Iterable[Any]], ours: Sequence[SuitCoseProfile] = TAM_SUIT_COSE_PROFILES
) -> Optional[SuitCoseProfile]:
    """The first of the peer's SUIT COSE profiles we support, or None.

    Entries that are not four integers (older agents sent two-element profiles) are skipped.
    """
    if not isinstance(peer_profiles, (list, tuple)):
        return None
    supported = {tuple(profile) for profile in ours}
    for profile in peer_profiles:
        if not isinstance(profile, (list, tuple)) or len(profile) != 4:
            continue
        if not all(_is_int(value) for value in profile):
            continue
        if tuple(profile) in supported:
            return tuple(profile)
    return None


def equivalent_algorithms(alg: int) -> tuple[int, ...]:
    """Algorithms that verify exactly like `alg` with the same key: -7 ~ -9, -8 ~ -19.

    Returns (alg,) for an algorithm without an alias.
    """
    return _EQUIVALENT_ALGORITHMS.get(alg, (alg,)) if _is_int(alg) else (alg,)
