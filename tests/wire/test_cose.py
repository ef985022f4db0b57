"""COSE_Sign1 / COSE_Sign: round trips, tampering, algorithm rules, interop, cross-checks."""

import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from cwt import COSE, COSEKey, Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from pycose.algorithms import CoseAlgorithm
from pycose.algorithms import EdDSA as PycoseEdDSA
from pycose.algorithms import Es256 as PycoseEs256
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256
from pycose.keys.curves import Ed25519 as CoseCurveEd25519
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages.sign1message import Sign1Message
from pycose.messages.signer import CoseSignature
from pycose.messages.signmessage import SignMessage

from apps.teep.wire import algorithms, cose
from apps.teep.wire.cose import CoseMessage, CoseSignatureInfo, parse, sign, sign1, verify
from apps.teep.wire.errors import CoseError
from apps.teep.wire.keys import TeepKey
from tests.wire.test_keys import DEMO_AGENT_KID, LIBTEEP_AGENT_KID, TAM_KID, VERIFIER_KID, load_jwk

PAYLOAD = b"\x83\x01\xa1\x14\x48tokentok\x01"  # any bytes; COSE does not look inside

ALGS = [(-7, "p256"), (-9, "p256"), (-8, "ed25519"), (-19, "ed25519")]


@pytest.fixture(scope="module")
def p256():
    return TeepKey.generate("p256")


@pytest.fixture(scope="module")
def ed25519():
    return TeepKey.generate("ed25519")


@pytest.fixture(scope="module")
def keys(p256, ed25519):
    return {"p256": p256, "ed25519": ed25519}


def _array(message: bytes) -> list:
    item = cbor2.loads(message)
    return item.value if isinstance(item, cbor2.CBORTag) else item


def _rebuild(message: bytes, array: list) -> bytes:
    item = cbor2.loads(message)
    if isinstance(item, cbor2.CBORTag):
        return cbor2.dumps(cbor2.CBORTag(item.tag, array))
    return cbor2.dumps(array)


# --- algorithms registered in pycose -----------------------------------------------------------


@pytest.mark.parametrize(
    "alg, fullname", [(-7, "ES256"), (-9, "ESP256"), (-8, "EDDSA"), (-19, "ED25519")]
)
def test_our_algorithm_classes_are_what_pycose_looks_up(alg, fullname):
    ours = algorithms.ALGORITHM_CLASSES[alg]
    assert ours.__module__ == "apps.teep.wire.algorithms"
    assert CoseAlgorithm.from_id(alg) is ours
    assert CoseAlgorithm.from_id(fullname) is ours
    assert CoseAlgorithm.from_id(fullname.lower()) is ours


def test_pycose_original_classes_are_not_ours():
    """The module attributes still name pycose's own (pure-Python ecdsa) classes: used below."""
    assert PycoseEs256 is not algorithms.Es256 and PycoseEs256.__module__ == "pycose.algorithms"
    assert PycoseEdDSA is not algorithms.EdDSA


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
@pytest.mark.parametrize("alg, kind", ALGS)
def test_sign1_round_trip(keys, alg, kind, tagged):
    key = keys[kind]
    message = sign1(PAYLOAD, key, alg, tagged=tagged)
    assert message[0] == (0xD2 if tagged else 0x84)  # tag 18 / array(4)

    parsed = parse(message)
    assert parsed.structure == "COSE_Sign1" and parsed.tagged is tagged
    assert parsed.payload == PAYLOAD
    expected = CoseSignatureInfo(alg=alg, kid=key.kid, protected={1: alg}, unprotected={4: key.kid})
    assert parsed.signatures == [expected]
    assert verify(message, key.public()) == PAYLOAD
    assert verify(parsed, key) == PAYLOAD


def test_sign1_layout_is_alg_protected_kid_unprotected(p256):
    """As teep-wasm-demo and libteep send it: protected h'a10128', kid in the unprotected map."""
    array = _array(sign1(PAYLOAD, p256))
    assert array[0] == bytes.fromhex("a10128")
    assert array[1] == {4: p256.kid}
    assert array[2] == PAYLOAD
    assert len(array[3]) == 64


def test_sign1_default_algorithm_follows_the_key(p256, ed25519):
    assert parse(sign1(b"x", p256)).signatures[0].alg == -9
    assert parse(sign1(b"x", ed25519)).signatures[0].alg == -19


def test_sign1_kid_none_or_custom(p256):
    without = parse(sign1(PAYLOAD, p256, kid=None))
    assert without.signatures[0].kid is None and without.unprotected == {}
    custom = parse(sign1(PAYLOAD, p256, kid=b"kid-2"))
    assert custom.signatures[0].kid == b"kid-2"
    assert verify(sign1(PAYLOAD, p256, kid=None), p256) == PAYLOAD


@pytest.mark.parametrize("alg, kind", ALGS)
def test_detached_payload(keys, alg, kind):
    key = keys[kind]
    message = sign1(PAYLOAD, key, alg, detached=True)
    assert parse(message).payload is None and _array(message)[2] is None
    assert verify(message, key, detached_payload=PAYLOAD) == PAYLOAD
    with pytest.raises(CoseError, match="detached"):
        verify(message, key)
    with pytest.raises(CoseError, match="does not verify"):
        verify(message, key, detached_payload=PAYLOAD + b"!")
    with pytest.raises(CoseError, match="detached_payload must be None"):
        verify(sign1(PAYLOAD, key, alg), key, detached_payload=PAYLOAD)


def test_external_aad_is_signed(p256):
    message = sign1(PAYLOAD, p256, external_aad=b"context")
    assert verify(message, p256, external_aad=b"context") == PAYLOAD
    with pytest.raises(CoseError):
        verify(message, p256)


# --- tampering ---------------------------------------------------------------------------------


def _flip(value: bytes, position: int, bit: int) -> bytes:
    index = position % len(value)
    return value[:index] + bytes([value[index] ^ (1 << bit)]) + value[index + 1 :]


@pytest.mark.parametrize("bit", [0, 7])
@pytest.mark.parametrize("position", [0, 1, -1], ids=["first", "second", "last"])
@pytest.mark.parametrize("part", [0, 2, 3], ids=["protected", "payload", "signature"])
@pytest.mark.parametrize("alg, kind", ALGS)
def test_flipped_bit_fails(keys, alg, kind, part, position, bit):
    key = keys[kind]
    message = sign1(PAYLOAD, key, alg)
    array = _array(message)
    array[part] = _flip(array[part], position, bit)
    with pytest.raises(CoseError):
        verify(_rebuild(message, array), key)


def test_every_bit_of_the_signed_bytes_matters(p256):
    """Flip each bit of the whole message: outside the unprotected header, every flip fails."""
    message = sign1(PAYLOAD, p256)
    unprotected = cbor2.dumps({4: p256.kid})
    start = message.index(unprotected)
    unsigned = range(start, start + len(unprotected))
    for index in range(len(message)):
        for bit in range(8):
            tampered = _flip(message, index, bit)
            if index in unsigned:
                # e.g. kid label 4 -> 5 still verifies: RFC 9052 does not sign this bucket.
                try:
                    verify(tampered, p256)
                except CoseError:
                    pass
                continue
            with pytest.raises(CoseError):
                verify(tampered, p256)


def test_wrong_key_fails(p256):
    other = TeepKey.generate("p256")
    with pytest.raises(CoseError, match="does not verify"):
        verify(sign1(PAYLOAD, p256), other)


# --- algorithm rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg, kind", [(-19, "p256"), (-8, "p256"), (-9, "ed25519"), (-7, "ed25519"), (-35, "p256")]
)
def test_sign_refuses_algorithm_the_key_cannot_use(keys, alg, kind):
    with pytest.raises(CoseError, match="does not match"):
        sign1(PAYLOAD, keys[kind], alg)


def test_verify_refuses_algorithm_key_type_mismatch(p256, ed25519):
    with pytest.raises(CoseError, match="does not match the ed25519 key"):
        verify(sign1(PAYLOAD, p256), ed25519)
    # A message claiming Ed25519 but signed with ECDSA is refused before any math.
    array = _array(sign1(PAYLOAD, p256))
    array[0] = cbor2.dumps({1: -19})
    with pytest.raises(CoseError, match="does not match the p256 key"):
        verify(cbor2.dumps(cbor2.CBORTag(18, array)), p256)


def test_verify_honours_allowed_algs(p256):
    legacy = sign1(PAYLOAD, p256, -7)
    assert verify(legacy, p256) == PAYLOAD
    with pytest.raises(CoseError, match="not allowed"):
        verify(legacy, p256, allowed_algs=(-9, -19))


def test_verify_refuses_a_missing_alg(p256):
    array = _array(sign1(PAYLOAD, p256))
    array[0] = b""
    with pytest.raises(CoseError, match="no alg"):
        verify(cbor2.dumps(array), p256)


def test_public_key_cannot_sign(p256):
    with pytest.raises(CoseError, match="private key"):
        sign1(PAYLOAD, p256.public())


def test_non_bytes_arguments_are_cose_errors(p256):
    with pytest.raises(CoseError):
        sign1("text", p256)
    with pytest.raises(CoseError):
        verify(sign1(PAYLOAD, p256), "not a key")
    with pytest.raises(CoseError):
        verify(sign1(PAYLOAD, p256), p256, external_aad="x")


# --- COSE_Sign (TEEP 8.1 initial QueryRequest) ----------------------------------------------------


def test_cose_sign_with_esp256_and_ed25519_verifies_with_either_key(p256, ed25519):
    message = sign(PAYLOAD, [(p256, -9), (ed25519, -19)])
    assert message[:2] == b"\xd8\x62"  # tag 98
    parsed = parse(message)
    assert parsed.structure == "COSE_Sign" and parsed.tagged
    assert parsed.protected == {} and _array(message)[0] == b""
    assert [(s.alg, s.kid) for s in parsed.signatures] == [(-9, p256.kid), (-19, ed25519.kid)]
    assert verify(message, p256.public()) == PAYLOAD
    assert verify(message, ed25519.public()) == PAYLOAD
    with pytest.raises(CoseError, match="no COSE_Signature"):
        verify(message, TeepKey.generate("p256"))
    with pytest.raises(CoseError, match="no COSE_Signature uses an allowed algorithm"):
        verify(message, ed25519, allowed_algs=(-9,))


def test_cose_sign_untagged_and_tampered(p256, ed25519):
    message = sign(PAYLOAD, [(p256, -9), (ed25519, -19)], tagged=False)
    assert parse(message).structure == "COSE_Sign" and not parse(message).tagged
    assert verify(message, ed25519) == PAYLOAD
    array = _array(message)
    array[2] = _flip(array[2], 3, 0)
    for key in (p256, ed25519):
        with pytest.raises(CoseError):
            verify(cbor2.dumps(array), key)


def test_cose_sign_skips_a_signer_with_an_algorithm_we_do_not_know(p256):
    message = sign(PAYLOAD, [(p256, -9)])
    array = _array(message)
    foreign = [cbor2.dumps({1: -65535}), {4: b"other"}, b"\x00" * 64]
    array[3] = [foreign] + array[3]
    assert verify(cbor2.dumps(cbor2.CBORTag(98, array)), p256) == PAYLOAD


def test_cose_sign_body_protected_empty_map_counts_as_empty(p256):
    """RFC 9052 4.4: no protected attributes -> h'' in the Sig_structure, even if sent as h'a0'."""
    sign_protected = cbor2.dumps({1: -9})
    to_be_signed = cbor2.dumps(["Signature", b"", sign_protected, b"", PAYLOAD])
    signature = algorithms.ecdsa_p256_sign(p256.private_key, to_be_signed)
    message = _tag(98, [b"\xa0", {}, PAYLOAD, [[sign_protected, {}, signature]]])
    assert verify(message, p256) == PAYLOAD
    assert verify(parse(message), p256) == PAYLOAD


def test_registration_happens_on_importing_cose():
    code = (
        "import apps.teep.wire.cose\n"
        "from pycose.algorithms import CoseAlgorithm\n"
        "assert CoseAlgorithm.from_id(-9).__module__ == 'apps.teep.wire.algorithms'\n"
        "assert CoseAlgorithm.from_id('ES256').__module__ == 'apps.teep.wire.algorithms'\n"
    )
    checkout = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=checkout)


def test_cose_sign_needs_signers(p256):
    with pytest.raises(CoseError):
        sign(PAYLOAD, [])
    with pytest.raises(CoseError):
        sign(PAYLOAD, [(p256, -19)])
    with pytest.raises(CoseError):
        sign(PAYLOAD, [p256])


# --- parse() refusals --------------------------------------------------------------------------


def _sign1_array(**overrides):
    array = [cbor2.dumps({1: -9}), {4: b"kid"}, b"payload", b"\x00" * 64]
    for index, value in overrides.items():
        array[int(index[1:])] = value
    return array


def _nested(depth):
    value = [1]
    for _ in range(depth):
        value = [value]
    return value


def _tag(n, value):
    return cbor2.dumps(cbor2.CBORTag(n, value))


MALFORMED = {
    "empty": b"",
    "not cbor": b"\xff\xff",
    "trailing bytes": _tag(18, _sign1_array()) + b"\x00",
    "truncated": _tag(18, _sign1_array())[:-1],
    "mac0 tag": _tag(17, _sign1_array()),
    "three elements": _tag(18, _sign1_array()[:3]),
    "five elements": _tag(18, _sign1_array() + [b""]),
    "a map": cbor2.dumps({1: 2}),
    "an integer": cbor2.dumps(18),
    "protected is a map": _tag(18, _sign1_array(e0={1: -9})),
    "protected wraps a list": _tag(18, _sign1_array(e0=cbor2.dumps([1, -9]))),
    "protected wraps bad cbor": _tag(18, _sign1_array(e0=b"\xa1\x01")),
    "protected has trailing bytes": _tag(18, _sign1_array(e0=cbor2.dumps({1: -9}) + b"\x00")),
    "unprotected is bytes": _tag(18, _sign1_array(e1=b"\xa0")),
    "alg only unprotected": _tag(18, _sign1_array(e0=b"", e1={1: -9})),
    "alg in both buckets": _tag(18, _sign1_array(e1={1: -9})),
    "alg as text": _tag(18, _sign1_array(e0=cbor2.dumps({1: "ESP256"}))),
    "alg as bool": _tag(18, _sign1_array(e0=cbor2.dumps({1: True}))),
    "kid as text": _tag(18, _sign1_array(e1={4: "kid"})),
    "float label": _tag(18, _sign1_array(e1={1.5: b""})),
    "payload as text": _tag(18, _sign1_array(e2="payload")),
    "signature as int": _tag(18, _sign1_array(e3=7)),
    "sign1 tag with signatures array": _tag(18, _sign1_array(e3=[[b"", {}, b""]])),
    "crit not understood": _tag(18, _sign1_array(e0=cbor2.dumps({1: -9, 2: [99], 99: 1}))),
    "crit names absent label": _tag(18, _sign1_array(e0=cbor2.dumps({1: -9, 2: [3]}))),
    "crit unprotected": _tag(18, _sign1_array(e1={2: [1]})),
    "sign with no signatures": _tag(98, [b"", {}, b"payload", []]),
    "sign with bstr signatures": _tag(98, [b"", {}, b"payload", b"sig"]),
    "signature of two elements": _tag(98, [b"", {}, b"payload", [[cbor2.dumps({1: -9}), {}]]]),
    "signature alg unprotected": _tag(98, [b"", {}, b"payload", [[b"", {1: -9}, b"s"]]]),
    "too deep": _tag(18, _sign1_array(e1={5: _nested(30)})),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_parse_refuses(data, p256):
    with pytest.raises(CoseError):
        parse(data)
    with pytest.raises(CoseError):
        verify(data, p256)


def test_parse_refuses_non_bytes():
    with pytest.raises(CoseError):
        parse("d284")
    with pytest.raises(CoseError):
        parse(None)


def test_self_described_cbor_tag_is_transparent(p256):
    """RFC 8949 3.4.6: tag 55799 may prefix any item; cbor2 drops it, and so may we."""
    message = sign1(PAYLOAD, p256)
    assert verify(b"\xd9\xd9\xf7" + message, p256) == PAYLOAD


def test_parse_accepts_bytearray_and_empty_map_protected(p256):
    assert parse(bytearray(sign1(PAYLOAD, p256))).payload == PAYLOAD
    parsed = parse(_tag(18, _sign1_array(e0=b"\xa0")))
    assert parsed.signatures[0].alg is None and parsed.protected == {}


def test_message_is_frozen(p256):
    parsed = parse(sign1(PAYLOAD, p256))
    assert isinstance(parsed, CoseMessage)
    with pytest.raises(AttributeError):
        parsed.payload = b"other"


# --- interop vectors ---------------------------------------------------------------------------

PREBUILT = "teep-wasm-demo/testvectors/prebuilt"
SCRIPTS = "teep-wasm-demo/testvectors/scripts"


@pytest.fixture(scope="module")
def interop(shared_dir):
    root = shared_dir / "interop-vectors"
    libteep_keys = root / "libteep/testfiles/key"

    def pem(name):
        return TeepKey.from_pem((libteep_keys / name).read_bytes())

    return {
        "root": root,
        "tam": TeepKey.from_cose_key((root / "AttesTAM/doc/examples/tam_priv.cbor").read_bytes()),
        "tam_jwk": load_jwk(root / SCRIPTS / "tam-esp256-priv.jwk"),
        "demo_agent": load_jwk(root / SCRIPTS / "agent-esp256-priv.jwk"),
        "attester": load_jwk(root / SCRIPTS / "attester-es256-priv.jwk"),
        "libteep_tam": pem("tam_prime256v1_pub.pem"),
        "libteep_agent": pem("teep_agent_prime256v1_pub.pem"),
        "libteep_verifier": pem("verifier_prime256v1.pem"),
    }


SIGNED_VECTORS = [
    # (file, key name, alg, kid in the unprotected header or None)
    (f"{PREBUILT}/query_request.tam.esp256.cose", "tam", -9, TAM_KID),
    (f"{PREBUILT}/update.tam.esp256.cose", "tam", -9, None),
    (f"{PREBUILT}/update0.tam.esp256.cose", "tam", -9, TAM_KID),
    (f"{PREBUILT}/update1.tam.esp256.cose", "tam_jwk", -9, TAM_KID),
    (f"{PREBUILT}/query_response_eat.agent.esp256.cose", "demo_agent", -9, DEMO_AGENT_KID),
    (f"{PREBUILT}/query_response_psa.agent.esp256.cose", "demo_agent", -9, DEMO_AGENT_KID),
    (f"{PREBUILT}/teep_success.agent.esp256.cose", "demo_agent", -9, DEMO_AGENT_KID),
    (f"{PREBUILT}/teep_error.agent.esp256.cose", "demo_agent", -9, DEMO_AGENT_KID),
    # The README says no key in the repos verifies this one; the libteep agent key does.
    (f"{PREBUILT}/query_response.agent.esp256.cose", "libteep_agent", -9, None),
    (f"{PREBUILT}/eat_evidence.attester.es256.cose", "attester", -7, None),
    (f"{PREBUILT}/psa_token_evidence.attester.es256.cose", "attester", -7, None),
    ("libteep/testfiles/query_request_cose.cbor", "libteep_tam", -7, TAM_KID),
    ("libteep/testfiles/update_cose.cbor", "libteep_tam", -7, TAM_KID),
    ("libteep/testfiles/query_response_cose.cbor", "libteep_agent", -7, LIBTEEP_AGENT_KID),
    ("libteep/testfiles/teep_success_cose.cbor", "libteep_agent", -7, LIBTEEP_AGENT_KID),
    ("libteep/testfiles/teep_error_cose.cbor", "libteep_agent", -7, LIBTEEP_AGENT_KID),
    ("libteep/testfiles/evidence_cose.cbor", "libteep_agent", -7, LIBTEEP_AGENT_KID),
    ("libteep/testfiles/attestation_results_cose.cbor", "libteep_verifier", -7, VERIFIER_KID),
]


@pytest.mark.parametrize(
    "relative, key_name, alg, kid_hex",
    SIGNED_VECTORS,
    ids=[vector[0].split("/")[-1] for vector in SIGNED_VECTORS],
)
def test_interop_vector_verifies(interop, relative, key_name, alg, kid_hex):
    data = (interop["root"] / relative).read_bytes()
    parsed = parse(data)
    assert parsed.structure == "COSE_Sign1" and parsed.tagged and data[0] == 0xD2
    info = parsed.signatures[0]
    assert info.alg == alg and info.protected == {1: alg}
    if kid_hex is None:
        assert info.kid is None
    else:
        # kid: RFC 9679 thumbprint of the signer, in the unprotected header.
        assert 4 in info.unprotected and 4 not in info.protected
        assert info.kid.hex() == kid_hex
    key = interop[key_name]
    assert verify(data, key) == parsed.payload
    assert verify(data, key.public()) == parsed.payload


def test_interop_messages_do_not_verify_with_the_other_party(interop):
    prebuilt = interop["root"] / PREBUILT
    for name in ("query_request.tam.esp256.cose", "query_response.agent.esp256.cose"):
        with pytest.raises(CoseError, match="does not verify"):
            verify((prebuilt / name).read_bytes(), interop["demo_agent"])


@pytest.mark.parametrize(
    "name", [f"query_request_err{n}_cose.cbor" for n in (1, 2, 3)]
)
def test_libteep_error_vectors_parse_but_do_not_verify(interop, name):
    data = (interop["root"] / "libteep/testfiles" / name).read_bytes()
    assert parse(data).signatures[0].alg == -7
    with pytest.raises(CoseError, match="does not verify"):
        verify(data, interop["libteep_tam"])


def test_es384_vector_is_refused(interop):
    data = (interop["root"] / "libteep/testfiles/query_request_es384.cbor").read_bytes()
    assert parse(data).signatures[0].alg == -35
    with pytest.raises(CoseError, match="not allowed"):
        verify(data, interop["libteep_tam"])
    # Even when allowed, ES384 is not an algorithm a TEEP P-256 key verifies with.
    with pytest.raises(CoseError, match="does not match"):
        verify(data, interop["libteep_tam"], allowed_algs=(-35,) + cose.DEFAULT_ALLOWED_ALGS)


def test_our_query_request_is_byte_identical_to_teep_wasm_demo_but_for_the_signature(interop):
    theirs = (interop["root"] / PREBUILT / "query_request.tam.esp256.cose").read_bytes()
    ours = sign1(parse(theirs).payload, interop["tam"])
    assert ours[:-64] == theirs[:-64]
    assert verify(ours, interop["tam_jwk"].public()) == parse(theirs).payload


# --- cross-checks with independent implementations ----------------------------------------------


def _cwt_key(key: TeepKey, alg: int, private: bool):
    cose_key = key.to_cose_key(private=private)
    cose_key.update({2: key.kid, 3: alg})
    return COSEKey.new(cose_key)


@pytest.mark.parametrize("alg, kind", ALGS)
def test_python_cwt_verifies_what_we_sign(keys, alg, kind):
    key = keys[kind]
    assert COSE.new().decode(sign1(PAYLOAD, key, alg), _cwt_key(key, alg, False)) == PAYLOAD
    assert COSE.new().decode(sign(PAYLOAD, [(key, alg)]), _cwt_key(key, alg, False)) == PAYLOAD


def test_python_cwt_verifies_our_two_signature_cose_sign(p256, ed25519):
    message = sign(PAYLOAD, [(p256, -9), (ed25519, -19)])
    assert COSE.new().decode(message, _cwt_key(p256, -9, False)) == PAYLOAD
    assert COSE.new().decode(message, _cwt_key(ed25519, -19, False)) == PAYLOAD


@pytest.mark.parametrize("alg, kind", ALGS)
def test_we_verify_what_python_cwt_signs(keys, alg, kind):
    key = keys[kind]
    signer_key = _cwt_key(key, alg, True)
    cwt_cose = COSE.new(alg_auto_inclusion=True, kid_auto_inclusion=True)
    sign1_message = cwt_cose.encode_and_sign(PAYLOAD, signer_key)
    parsed = parse(sign1_message)
    assert parsed.signatures[0].alg == alg and parsed.signatures[0].kid == key.kid
    assert verify(sign1_message, key.public()) == PAYLOAD

    signer = Signer.new(cose_key=signer_key, protected={1: alg}, unprotected={4: key.kid})
    sign_message = COSE.new().encode_and_sign(PAYLOAD, signers=[signer])
    assert parse(sign_message).structure == "COSE_Sign"
    assert verify(sign_message, key.public()) == PAYLOAD


@pytest.mark.parametrize("alg, kind", ALGS)
def test_pycose_original_algorithms_verify_our_signatures(keys, alg, kind):
    """pycose's own ES256 (pure-Python ecdsa) and EdDSA check the bytes our classes produced."""
    key = keys[kind]
    array = _array(sign1(PAYLOAD, key, alg))
    to_be_signed = cbor2.dumps(["Signature1", array[0], b"", array[2]])
    cose_key = key.to_cose_key()
    if kind == "p256":
        pycose_key = EC2Key(crv=P256, x=cose_key[-2], y=cose_key[-3])
        assert PycoseEs256.verify(pycose_key, to_be_signed, array[3])
        assert not PycoseEs256.verify(pycose_key, to_be_signed + b"x", array[3])
    else:
        pycose_key = OKPKey(crv=CoseCurveEd25519, x=cose_key[-2])
        assert PycoseEdDSA.verify(pycose_key, to_be_signed, array[3])


def test_we_verify_pycose_original_es256_signature(p256):
    cose_key = p256.to_cose_key(private=True)
    pycose_key = EC2Key(crv=P256, x=cose_key[-2], y=cose_key[-3], d=cose_key[-4])
    protected = cbor2.dumps({1: -9})
    signature = PycoseEs256.sign(pycose_key, cbor2.dumps(["Signature1", protected, b"", PAYLOAD]))
    message = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, PAYLOAD, signature]))
    assert verify(message, p256) == PAYLOAD


# --- pycose, with its own math, as the independent implementation ------------------------------


class _PycoseEsp256(PycoseEs256):
    """pycose's own ECDSA P-256 (pure-Python `ecdsa`) under the fully specified id -9."""

    identifier = -9
    fullname = "ESP256"


class _PycoseEd25519(PycoseEdDSA):
    """pycose's own EdDSA under the fully specified id -19."""

    identifier = -19
    fullname = "ED25519"


_PYCOSE_OWN = {-7: PycoseEs256, -9: _PycoseEsp256, -8: PycoseEdDSA, -19: _PycoseEd25519}


@pytest.fixture
def pycose_own_math():
    """pycose's registry with pycose's own algorithm classes under all four ids, so that on
    pycose's side nothing of ours runs (structure, Sig_structure and math are all pycose's);
    our classes are put back afterwards."""
    registry = CoseAlgorithm.get_registered_classes()
    saved = dict(registry)
    for cls in _PYCOSE_OWN.values():
        CoseAlgorithm.register_attribute()(cls)
    assert all(CoseAlgorithm.from_id(alg) is cls for alg, cls in _PYCOSE_OWN.items())
    yield
    registry.clear()
    registry.update(saved)
    algorithms.ensure_registered()


def _pycose_key(key: TeepKey, *, private: bool):
    cose_key = key.to_cose_key(private=private)
    d = cose_key.get(-4, b"")
    if key.kind == "p256":
        return EC2Key(crv=P256, x=cose_key[-2], y=cose_key[-3], d=d)
    return OKPKey(crv=CoseCurveEd25519, x=cose_key[-2], d=d)


@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("alg, kind", ALGS)
def test_pycose_verifies_our_sign1(keys, alg, kind, detached, pycose_own_math):
    key = keys[kind]
    message = Sign1Message.decode(sign1(PAYLOAD, key, alg, detached=detached))
    assert message.get_attr(Algorithm) is _PYCOSE_OWN[alg]
    assert message.get_attr(KID) == key.kid
    message.key = _pycose_key(key, private=False)
    detached_payload = PAYLOAD if detached else None
    assert message.verify_signature(detached_payload)
    other = Sign1Message.decode(sign1(PAYLOAD, TeepKey.generate(kind), alg, detached=detached))
    other.key = _pycose_key(key, private=False)
    assert not other.verify_signature(detached_payload)


@pytest.mark.parametrize("alg, kind", ALGS)
def test_pycose_verifies_our_sign1_with_external_aad(keys, alg, kind, pycose_own_math):
    key = keys[kind]
    message = Sign1Message.decode(sign1(PAYLOAD, key, alg, external_aad=b"context"))
    message.key = _pycose_key(key, private=False)
    message.external_aad = b"context"
    assert message.verify_signature()
    message.external_aad = b""
    assert not message.verify_signature()


def test_pycose_verifies_every_signature_of_our_cose_sign(p256, ed25519, pycose_own_math):
    signers = [(p256, -9), (ed25519, -19), (p256, -7), (ed25519, -8)]
    message = SignMessage.decode(sign(PAYLOAD, signers))
    assert message.payload == PAYLOAD and len(message.signers) == 4
    for signature, (key, alg) in zip(message.signers, signers, strict=True):
        assert signature.get_attr(Algorithm) is _PYCOSE_OWN[alg]
        assert signature.get_attr(KID) == key.kid
        signature.key = _pycose_key(key, private=False)
        assert signature.verify_signature()
        signature.key = _pycose_key(TeepKey.generate(key.kind), private=False)
        assert not signature.verify_signature()


@pytest.mark.parametrize("detached", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("alg, kind", ALGS)
def test_we_verify_pycose_sign1(keys, alg, kind, detached, pycose_own_math):
    key = keys[kind]
    message = Sign1Message(
        phdr={Algorithm: _PYCOSE_OWN[alg]},
        uhdr={KID: key.kid},
        payload=None if detached else PAYLOAD,
        key=_pycose_key(key, private=True),
    )
    encoded = message.encode(detached_payload=PAYLOAD if detached else None)
    parsed = parse(encoded)
    assert parsed.signatures[0].alg == alg and parsed.signatures[0].kid == key.kid
    detached_payload = PAYLOAD if detached else None
    assert verify(encoded, key.public(), detached_payload=detached_payload) == PAYLOAD
    assert verify(parsed, key.public(), detached_payload=detached_payload) == PAYLOAD
    with pytest.raises(CoseError, match="does not verify"):
        verify(parsed, TeepKey.generate(kind), detached_payload=detached_payload)


def test_we_verify_each_signature_of_a_pycose_cose_sign(p256, ed25519, pycose_own_math):
    signers = [(p256, -9), (ed25519, -19), (p256, -7), (ed25519, -8)]
    message = SignMessage(
        phdr={},
        uhdr={},
        payload=PAYLOAD,
        signers=[
            CoseSignature(
                phdr={Algorithm: _PYCOSE_OWN[alg]},
                uhdr={KID: key.kid},
                key=_pycose_key(key, private=True),
            )
            for key, alg in signers
        ],
    )
    parsed = parse(message.encode())
    assert [(info.alg, info.kid) for info in parsed.signatures] == [
        (alg, key.kid) for key, alg in signers
    ]
    for key, alg in signers:
        assert verify(parsed, key.public(), allowed_algs=(alg,)) == PAYLOAD


@pytest.mark.parametrize("alg", [-8, -19])
def test_ed25519_output_is_byte_identical_to_pycose(ed25519, alg, pycose_own_math):
    """Ed25519 is deterministic: pycose and we produce the same bytes, structure and all."""
    pycose_key = _pycose_key(ed25519, private=True)
    theirs = Sign1Message(
        phdr={Algorithm: _PYCOSE_OWN[alg]}, uhdr={KID: ed25519.kid}, payload=PAYLOAD, key=pycose_key
    ).encode()
    assert sign1(PAYLOAD, ed25519, alg) == theirs
    theirs = SignMessage(
        phdr={},
        uhdr={},
        payload=PAYLOAD,
        signers=[
            CoseSignature(
                phdr={Algorithm: _PYCOSE_OWN[alg]}, uhdr={KID: ed25519.kid}, key=pycose_key
            )
        ],
    ).encode()
    assert sign(PAYLOAD, [(ed25519, alg)]) == theirs


def test_pycose_own_math_fixture_puts_our_classes_back():
    assert all(
        CoseAlgorithm.from_id(alg) is algorithms.ALGORITHM_CLASSES[alg] for alg in _PYCOSE_OWN
    )


# --- the hot path: keys used as they are, messages decoded once (issue 11) -------------------


def test_sign_and_verify_use_the_keys_cryptography_objects_without_conversion(
    keys, monkeypatch
):
    """No COSE_Key (or pycose key) is built per call: the TeepKey's own objects do the math."""

    def no_conversion(*args, **kwargs):
        raise AssertionError("a key was converted on the signing / verification path")

    for key in keys.values():
        key.kid  # the thumbprint is computed once per key, then kept
    monkeypatch.setattr(TeepKey, "to_cose_key", no_conversion)
    monkeypatch.setattr(TeepKey, "_required_members", no_conversion)
    for alg, kind in ALGS:
        key = keys[kind]
        assert verify(sign1(PAYLOAD, key, alg), key) == PAYLOAD
        assert verify(sign(PAYLOAD, [(key, alg)]), key) == PAYLOAD


def test_verify_of_a_parsed_message_decodes_nothing_again(p256, ed25519, monkeypatch):
    sign1_message = parse(sign1(PAYLOAD, p256))
    sign_message = parse(sign(PAYLOAD, [(p256, -9), (ed25519, -19)]))

    def no_decoding(*args, **kwargs):
        raise AssertionError("verify() decoded the message again")

    monkeypatch.setattr(cose, "_loads", no_decoding)
    monkeypatch.setattr(cbor2, "loads", no_decoding)
    assert verify(sign1_message, p256) == PAYLOAD
    assert verify(sign_message, ed25519) == PAYLOAD
    with pytest.raises(CoseError, match="does not verify"):
        verify(sign1_message, TeepKey.generate("p256"))


def test_a_hand_built_cose_message_is_verified_from_its_encoded_bytes(p256):
    encoded = sign1(PAYLOAD, p256)
    info = CoseSignatureInfo(alg=-9, kid=p256.kid, protected={1: -9}, unprotected={4: p256.kid})
    by_hand = CoseMessage(
        structure="COSE_Sign1", tagged=True, payload=b"not what was signed", signatures=[info],
        encoded=encoded,
    )
    assert verify(by_hand, p256) == PAYLOAD
    empty = CoseMessage(structure="COSE_Sign1", tagged=True, payload=PAYLOAD, signatures=[info])
    with pytest.raises(CoseError):
        verify(empty, p256)


# --- robustness ---------------------------------------------------------------------------------


@settings(deadline=None, max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_give_only_cose_error(data):
    key = _FUZZ_KEY
    for call in (lambda: parse(data), lambda: verify(data, key)):
        try:
            call()
        except CoseError:
            pass


_FUZZ_KEY = TeepKey.generate("p256")
_FUZZ_MESSAGES = [
    sign1(PAYLOAD, _FUZZ_KEY),
    sign1(PAYLOAD, _FUZZ_KEY, tagged=False),
    sign(PAYLOAD, [(_FUZZ_KEY, -9), (TeepKey.generate("ed25519"), -19)]),
]


@pytest.mark.parametrize("index", range(len(_FUZZ_MESSAGES)))
def test_every_truncation_gives_cose_error(index):
    message = _FUZZ_MESSAGES[index]
    for length in range(len(message)):
        with pytest.raises(CoseError):
            verify(message[:length], _FUZZ_KEY)


@settings(deadline=None, max_examples=400)
@given(st.sampled_from(_FUZZ_MESSAGES), st.integers(min_value=0), st.integers(0, 255))
def test_mutated_messages_give_only_cose_error(message, position, value):
    index = position % len(message)
    mutated = message[:index] + bytes([value]) + message[index + 1 :]
    try:
        assert verify(mutated, _FUZZ_KEY) == PAYLOAD
    except CoseError:
        pass


_cbor_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=20),
    st.text(max_size=5),
    st.floats(allow_nan=False),
)
_cbor_value = st.recursive(
    _cbor_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.integers(-5, 5), st.text(max_size=2)), children, max_size=4),
    ),
    max_leaves=12,
)
_header_bstr = st.one_of(
    st.just(b""),
    st.binary(max_size=8),
    st.dictionaries(st.sampled_from([1, 2, 3, 4, 5, "x"]), _cbor_value, max_size=3).map(
        cbor2.dumps
    ),
)


@settings(deadline=None, max_examples=400)
@given(
    st.sampled_from([None, 18, 98, 17, 96]),
    st.lists(st.one_of(_header_bstr, _cbor_value), min_size=0, max_size=5),
)
def test_structured_garbage_gives_only_cose_error(tag, array):
    data = cbor2.dumps(array if tag is None else cbor2.CBORTag(tag, array))
    try:
        parse(data)
        verify(data, _FUZZ_KEY)
    except CoseError:
        pass


def test_crit_with_an_unhashable_label_is_a_cose_error():
    # Found by hypothesis in CI: a list inside crit once escaped as TypeError.
    import cbor2

    from apps.teep.wire.cose import parse
    from apps.teep.wire.errors import CoseError

    message = cbor2.dumps([cbor2.dumps({2: [[]]}), {}, b"", b""])
    with pytest.raises(CoseError, match="crit"):
        parse(message)


@settings(deadline=None, max_examples=300)
@given(
    st.sampled_from([0, 1, 23, 24, 255, 256, 65535, 65536]).flatmap(
        lambda size: st.binary(min_size=size, max_size=size + 2)
    ),
    st.binary(max_size=30),
    st.binary(max_size=30),
)
def test_sig_structures_are_the_cbor_of_rfc_9052(payload, protected, external_aad):
    assert cose.sig_structure1(protected, external_aad, payload) == cbor2.dumps(
        ["Signature1", protected, external_aad, payload]
    )
    assert cose.sig_structure(b"", protected, external_aad, payload) == cbor2.dumps(
        ["Signature", b"", protected, external_aad, payload]
    )
