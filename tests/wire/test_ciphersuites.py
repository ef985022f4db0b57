"""TEEP cipher suites, SUIT COSE profiles, versions: constants match the CDDL; negotiation."""

import re

import cbor2
import pytest

from apps.teep.wire import ciphersuites as cs
from apps.teep.wire.errors import CoseError


def _cddl_assignments(path):
    text = path.read_text()
    pattern = re.compile(r"^([A-Za-z][\w-]*)\s*=\s*([^;\n]+)", re.M)
    return {m.group(1): m.group(2).strip() for m in pattern.finditer(text)}


def _profile(cddl_value):
    return tuple(int(v) for v in cddl_value.strip("[]").split(","))


@pytest.fixture(scope="module")
def teep_cddl(specs_dir):
    return _cddl_assignments(specs_dir / "cddl" / "draft-ietf-teep-protocol.cddl")


@pytest.fixture(scope="module")
def mti_cddl(specs_dir):
    return _cddl_assignments(specs_dir / "cddl" / "draft-ietf-suit-mti.cddl")


def test_mandatory_suites_match_the_teep_cddl(teep_cddl):
    assert int(teep_cddl["cose-sign1"]) == cs.COSE_SIGN1 == 18
    assert cs.SUITE_SIGN1_ESP256 == ((18, int(teep_cddl["cose-alg-esp256"])),) == ((18, -9),)
    assert cs.SUITE_SIGN1_ED25519 == ((18, int(teep_cddl["cose-alg-ed25519"])),) == ((18, -19),)
    assert int(teep_cddl["FRESHNESS_NONCE"]) == cs.FRESHNESS_NONCE
    assert int(teep_cddl["FRESHNESS_TIMESTAMP"]) == cs.FRESHNESS_TIMESTAMP


@pytest.mark.parametrize(
    "name, constant",
    [
        ("suit-sha256-esp256-ecdh-a128ctr", cs.SUIT_SHA256_ESP256_ECDH_A128CTR),
        ("suit-sha256-ed25519-ecdh-a128ctr", cs.SUIT_SHA256_ED25519_ECDH_A128CTR),
        ("suit-sha256-esp256-ecdh-a128gcm", cs.SUIT_SHA256_ESP256_ECDH_A128GCM),
        ("suit-sha256-ed25519-ecdh-chacha-poly", cs.SUIT_SHA256_ED25519_ECDH_CHACHA_POLY),
    ],
)
def test_suit_profiles_match_the_mti_cddl(mti_cddl, name, constant):
    assert _profile(mti_cddl[name]) == constant
    assert constant in cs.TAM_SUIT_COSE_PROFILES


def test_tam_supports_exactly_the_four_teep_profiles(specs_dir, mti_cddl):
    cddl = (specs_dir / "cddl" / "draft-ietf-teep-protocol.cddl").read_text()
    teep_names = re.findall(r"^\$suit-cose-profile /= (\S+)", cddl, re.M)
    assert len(teep_names) == 4
    from_cddl = {_profile(mti_cddl[name]) for name in teep_names}
    assert from_cddl == set(cs.TAM_SUIT_COSE_PROFILES) and len(cs.TAM_SUIT_COSE_PROFILES) == 4


def test_offered_and_accepted_suites():
    assert cs.TAM_OFFERED_SUITES == (((18, -9),), ((18, -19),))
    assert set(cs.TAM_ACCEPTED_SUITES) == {((18, -9),), ((18, -19),), ((18, -7),), ((18, -8),)}
    assert cs.TAM_ACCEPTED_SUITES[:2] == cs.TAM_OFFERED_SUITES
    assert cs.SUPPORTED_VERSIONS == (0,)


# --- wire form -----------------------------------------------------------------------------------


def test_suite_wire_round_trip():
    wire = cbor2.loads(cbor2.dumps([[18, -9]]))
    assert cs.suite_from_wire(wire) == cs.SUITE_SIGN1_ESP256
    assert cs.suite_to_wire(cs.SUITE_SIGN1_ED25519) == [[18, -19]]
    assert cbor2.dumps(cs.suite_to_wire(cs.SUITE_SIGN1_ESP256)) == bytes.fromhex("81821228")
    assert cs.suite_from_wire(((18, -9),)) == cs.SUITE_SIGN1_ESP256


@pytest.mark.parametrize(
    "bad",
    [
        None,
        18,
        [],
        [18, -9],
        [[18]],
        [[18, -9, 0]],
        [["18", -9]],
        [[18, True]],
        [[18, -9.0]],
        [[None, 3, None]],  # libteep query_request_err2: a 3-element legacy suite
        "[[18,-9]]",
    ],
)
def test_malformed_suite_is_refused(bad):
    with pytest.raises(CoseError):
        cs.suite_from_wire(bad)
    with pytest.raises(ValueError):  # CoseError is a ValueError
        cs.suite_to_wire(bad)


# --- negotiation ---------------------------------------------------------------------------


def test_select_cipher_suite_takes_the_peers_first_acceptable():
    assert cs.select_cipher_suite([[[18, -19]], [[18, -9]]]) == cs.SUITE_SIGN1_ED25519
    assert cs.select_cipher_suite([[[18, -9]]]) == cs.SUITE_SIGN1_ESP256
    # libteep's QueryRequest offers the pre-2025 ES256 / EdDSA suites.
    assert cs.select_cipher_suite([[[18, -7]], [[18, -8]]]) == cs.SUITE_SIGN1_ES256
    assert cs.select_cipher_suite([[[18, -7]]], ours=cs.TAM_OFFERED_SUITES) is None


def test_select_cipher_suite_skips_garbage_and_unknown():
    peer = [[[None, 3, None]], 7, [[18, -35]], [[18, -9]]]
    assert cs.select_cipher_suite(peer) == cs.SUITE_SIGN1_ESP256
    assert cs.select_cipher_suite([[[98, -9]]]) is None  # COSE_Sign suite: not one we accept
    assert cs.select_cipher_suite([]) is None
    assert cs.select_cipher_suite(None) is None
    assert cs.select_cipher_suite("x") is None


@pytest.mark.parametrize("alg", [-9, -19, -7, -8])
def test_suite_for_algorithm_and_back(alg):
    suite = ((18, alg),)
    assert cs.suite_for_algorithm(alg) == suite
    assert cs.algorithm_of_suite(suite) == alg
    assert cs.algorithm_of_suite(cs.suite_to_wire(suite)) == alg


@pytest.mark.parametrize("alg", [-35, 0, None, "ESP256", True])
def test_suite_for_unknown_algorithm_is_refused(alg):
    with pytest.raises(CoseError):
        cs.suite_for_algorithm(alg)


@pytest.mark.parametrize("suite", [((98, -9),), ((18, -9), (18, -19)), [], [[18]]])
def test_algorithm_of_non_sign1_suite_is_refused(suite):
    with pytest.raises(CoseError):
        cs.algorithm_of_suite(suite)


@pytest.mark.parametrize(
    "peer, expected",
    [
        (None, 0),
        ([0], 0),
        ([1, 0], 0),
        ([1], None),
        ([], None),
        (["0"], None),
        ([True], None),
        ("0", None),
    ],
)
def test_select_version(peer, expected):
    assert cs.select_version(peer) == expected


def test_select_version_with_other_ours():
    assert cs.select_version([2, 1], ours=(1, 2)) == 2


def test_negotiate_suit_profile():
    gcm = [-16, -9, -29, 1]
    assert cs.negotiate_suit_profile([gcm]) == cs.SUIT_SHA256_ESP256_ECDH_A128GCM
    chacha = [-16, -19, -29, 24]
    assert cs.negotiate_suit_profile([chacha, gcm]) == cs.SUIT_SHA256_ED25519_ECDH_CHACHA_POLY
    # Older agents: two-element profiles, ES256 spellings, the non-TEEP HMAC profile.
    old = [[-16, -9], [-16, 5, -3, -65534], gcm]
    assert cs.negotiate_suit_profile(old) == cs.SUIT_SHA256_ESP256_ECDH_A128GCM
    libteep = [[-16, -7, -29, -65534], [-16, -8, -29, -65534]]
    assert cs.negotiate_suit_profile(libteep) is None
    assert (
        cs.negotiate_suit_profile(libteep, cs.TAM_SUIT_COSE_PROFILES + cs.LEGACY_SUIT_COSE_PROFILES)
        == cs.SUIT_SHA256_ES256_ECDH_A128CTR
    )
    assert cs.negotiate_suit_profile(None) is None
    assert cs.negotiate_suit_profile([["a", "b", "c", "d"], [True, -9, -29, 1]]) is None


@pytest.mark.parametrize(
    "alg, expected",
    [(-9, (-9, -7)), (-7, (-9, -7)), (-19, (-19, -8)), (-8, (-19, -8)), (-35, (-35,))],
)
def test_equivalent_algorithms(alg, expected):
    assert cs.equivalent_algorithms(alg) == expected
