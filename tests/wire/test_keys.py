"""TeepKey: loading, exporting and RFC 9679 thumbprints, against the specs' and interop keys."""

import base64
import hashlib
import json

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.teep.wire.errors import CoseError
from apps.teep.wire.keys import TeepKey, load_public_key

TAM_KID = "c770ec535d8c949586324adaf2ddffb76b1a852dfa52e19c80f7440ec163beea"
LIBTEEP_AGENT_KID = "e96788b10b1610abe478f9ce8dcfe2304c0911dd8cfeadde25ec30ccb5a7b5af"
DEMO_AGENT_KID = "d08d1602caa2d0ae0ade02666292b14cefd0d0282a153f7773acf6fdd0c0d378"
TC_SIGNER_KID = "ca9e35f23b2b525fb4fc83f512b0dcac4ac29e457e873a5d6a7313f71690b33c"
ATTESTER_KID = "00e1688373124a36f7c3204ef20f73c37be4bb0f34e72f45d7d38ee8dffa4c43"
VERIFIER_KID = "87b97e7c1fb5de418b2f5bc289fd80c8f123d5a37b9cc32e4ecbb24d7615a502"


def load_jwk(path) -> TeepKey:
    """An EC P-256 JWK (as teep-wasm-demo ships them) as a TeepKey, via its COSE_Key form."""
    jwk = json.loads(path.read_text())
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256"

    def b64(value):
        return base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "==")

    cose_key = {1: 2, -1: 1, -2: b64(jwk["x"]), -3: b64(jwk["y"])}
    if "d" in jwk:
        cose_key[-4] = b64(jwk["d"])
    return TeepKey.from_cose_key(cose_key)


def load_interop_key(interop_dir, relative) -> TeepKey:
    path = interop_dir / relative
    if path.suffix == ".pem":
        return TeepKey.from_pem(path.read_bytes())
    if path.suffix == ".jwk":
        return load_jwk(path)
    return TeepKey.from_cose_key(path.read_bytes())


@pytest.fixture(scope="session")
def interop_dir(shared_dir):
    return shared_dir / "interop-vectors"


@pytest.fixture(scope="session")
def keys_dir(vectors_dir):
    return vectors_dir / "keys"


def _load_spec_key(path) -> TeepKey:
    if path.suffix == ".pem":
        return TeepKey.from_pem(path.read_bytes())
    return TeepKey.from_cose_key(bytes.fromhex(path.read_text()))


def _expected(keys_dir, name):
    return (keys_dir / f"{name}.thumbprint-sha256.txt").read_text().strip()


# --- RFC 9679 thumbprints --------------------------------------------------------------------


def test_rfc9679_example_thumbprint(keys_dir):
    hex_file = keys_dir / "rfc9679-example-ec2-p256.thumbprint-input.hex"
    thumbprint_input = bytes.fromhex(hex_file.read_text())
    key = TeepKey.from_cose_key(thumbprint_input)
    assert cbor2.dumps(key.to_cose_key(), canonical=True) == thumbprint_input
    assert key.thumbprint().hex() == _expected(keys_dir, "rfc9679-example-ec2-p256")
    assert key.thumbprint().hex().startswith("496bd8afadf307e5")
    assert key.kid == key.thumbprint()


@pytest.mark.parametrize(
    "filename",
    [
        "suit-example-signer.private.cose_key.hex",
        "suit-example-signer.public.cose_key.hex",
        "suit-example-signer.private.pem",
        "suit-example-signer.public.pem",
    ],
)
def test_suit_example_signer_thumbprint(keys_dir, filename):
    key = _load_spec_key(keys_dir / filename)
    assert key.thumbprint().hex() == _expected(keys_dir, "suit-example-signer") == TC_SIGNER_KID
    assert key.is_private == ("private" in filename)


@pytest.mark.parametrize(
    "filename",
    [
        "receiver-kek-kid-2.private.cose_key.hex",
        "receiver-kek-kid-2.private.pem",
        "receiver-kek-kid-2.public.pem",
    ],
)
def test_receiver_kek_thumbprint_ignores_its_kid_member(keys_dir, filename):
    key = _load_spec_key(keys_dir / filename)
    # Its COSE_Key says kid 'kid-2'; the TEEP kid is always the thumbprint (TEEP 5).
    assert key.kid.hex() == _expected(keys_dir, "receiver-kek-kid-2") == LIBTEEP_AGENT_KID


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("AttesTAM/doc/examples/tam_priv.cbor", TAM_KID),
        ("libteep/testfiles/key/tam_prime256v1.pem", TAM_KID),
        ("teep-wasm-demo/testvectors/scripts/tam-esp256-priv.jwk", TAM_KID),
        ("teep-wasm-demo/testvectors/scripts/tam-esp256-pub.jwk", TAM_KID),
        ("libteep/examples-inc-keys/tam_es256_cose_key_private_buf.bin", TAM_KID),
        ("libcsuit/examples-inc-keys/tam_esp256_cose_key_private_buf.bin", TAM_KID),
        ("libteep/testfiles/key/teep_agent_prime256v1.pem", LIBTEEP_AGENT_KID),
        ("libcsuit/examples-inc-keys/device_esp256_cose_key_public_buf.bin", LIBTEEP_AGENT_KID),
        ("teep-wasm-demo/testvectors/scripts/agent-esp256-priv.jwk", DEMO_AGENT_KID),
        ("libcsuit/testfiles/key/trust_anchor_secp256r1.pem", TC_SIGNER_KID),
        ("AttesTAM/doc/examples/developer_priv.pem", TC_SIGNER_KID),
        ("teep-wasm-demo/testvectors/scripts/tc-signer-esp256-priv.jwk", TC_SIGNER_KID),
        ("teep-wasm-demo/testvectors/scripts/attester-es256-priv.jwk", ATTESTER_KID),
        ("libteep/testfiles/key/verifier_prime256v1.pem", VERIFIER_KID),
    ],
)
def test_interop_key_thumbprints_match_the_readme(interop_dir, relative, expected):
    assert load_interop_key(interop_dir, relative).kid.hex() == expected


@pytest.mark.parametrize(
    "relative, prefix",
    [
        ("teep-device/key/tam-teep-P256-priv.pem", "7781bde2"),
        ("teep-device/key/device-teep-P256-priv.pem", "e1ccddbd"),
        ("teep-device/key/tc-signer-P256-pub.pem", "75592830"),
    ],
)
def test_teep_device_key_thumbprints(interop_dir, relative, prefix):
    assert load_interop_key(interop_dir, relative).kid.hex().startswith(prefix)


def test_ed25519_thumbprint_is_over_the_three_okp_members(interop_dir):
    """libteep's private Ed25519 COSE_Key is RFC 8032 7.1 TEST 1 (secret 9d61b19d...)."""
    path = interop_dir / "libteep/examples-inc-keys/tam_ed25519_cose_key_private_buf.bin"
    key = TeepKey.from_cose_key(path.read_bytes())
    x = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key.is_private and key.to_cose_key() == {1: 1, -1: 6, -2: x}
    # RFC 9679 with RFC 8949 4.2.1 ordering, by hand: {1: 1, -1: 6, -2: x}, keys sorted 01, 20, 21.
    assert key.thumbprint() == hashlib.sha256(bytes.fromhex("a301012006215820") + x).digest()
    assert key.algorithms == (-19, -8) and key.default_algorithm == -19


def test_pem_with_ec_parameters_block_and_mislabelled_pkcs8(interop_dir):
    """libcsuit's trust anchor PEM: an EC PARAMETERS block, then PKCS#8 under "EC PRIVATE KEY"."""
    data = (interop_dir / "libcsuit/testfiles/key/trust_anchor_secp256r1.pem").read_bytes()
    assert b"EC PARAMETERS" in data
    assert TeepKey.from_pem(data).kid.hex() == TC_SIGNER_KID


# --- construction and export -------------------------------------------------------------------


@pytest.mark.parametrize("kind, algs", [("p256", (-9, -7)), ("ed25519", (-19, -8))])
def test_generate_and_round_trip(kind, algs):
    key = TeepKey.generate(kind)
    assert key.kind == kind and key.is_private
    assert key.algorithms == algs and key.default_algorithm == algs[0]

    assert TeepKey.from_cose_key(key.to_cose_key(private=True)) == key
    assert TeepKey.from_cose_key(cbor2.dumps(key.to_cose_key(private=True))) == key
    assert TeepKey.from_pem(key.private_pem()) == key

    public = key.public()
    assert not public.is_private
    assert public != key
    assert public.kid == key.kid
    assert TeepKey.from_cose_key(key.to_cose_key()) == public
    assert TeepKey.from_pem(key.public_pem()) == public
    assert -4 not in key.to_cose_key()
    assert "PRIVATE" not in repr(key) and key.kid.hex()[:16] in repr(key)


def test_public_key_cannot_export_private_material():
    public = TeepKey.generate("p256").public()
    with pytest.raises(CoseError):
        public.private_pem()
    with pytest.raises(CoseError):
        public.to_cose_key(private=True)
    with pytest.raises(CoseError):
        public.private_key


def test_unknown_kind_is_refused():
    with pytest.raises(CoseError):
        TeepKey.generate("rsa")


def test_sec1_ec_private_key_pem_is_read():
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert TeepKey.from_pem(pem).is_private


# --- load_public_key ---------------------------------------------------------------------------


def test_load_public_key_accepts_pem_cbor_and_hex():
    key = TeepKey.generate("p256")
    cose_cbor = cbor2.dumps(key.to_cose_key())
    for data in (
        key.public_pem(),
        key.private_pem(),
        cose_cbor,
        cbor2.dumps(key.to_cose_key(private=True)),
        cose_cbor.hex().encode(),
        cose_cbor.hex().upper(),
        "\n".join([cose_cbor.hex()[:40], cose_cbor.hex()[40:]]) + "\n",
    ):
        loaded = load_public_key(data)
        assert loaded == key.public() and not loaded.is_private


def test_load_public_key_reads_the_agent_key_of_an_eat_cnf(interop_dir):
    """AttesTAM's COSE_Key carries alg -9 (3); extra members do not disturb loading."""
    data = (interop_dir / "AttesTAM/doc/examples/tam_priv.cbor").read_bytes()
    assert load_public_key(data).kid.hex() == TAM_KID
    assert load_public_key(data.hex()).kid.hex() == TAM_KID


def _rsa_pem():
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _p384_pem():
    return ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _encrypted_pem():
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


_GOOD = TeepKey.generate("p256").to_cose_key(private=True)
_GOOD_ED = TeepKey.generate("ed25519").to_cose_key(private=True)
_OTHER = TeepKey.generate("p256").to_cose_key(private=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff",
        cbor2.dumps([1, 2]),
        cbor2.dumps({1: 3, -1: 65537}),  # RSA kty
        cbor2.dumps({1: "EC2", -1: 1, -2: _GOOD[-2], -3: _GOOD[-3]}),
        cbor2.dumps({1: 2, -1: 2, -2: _GOOD[-2], -3: _GOOD[-3]}),  # P-384 curve id
        cbor2.dumps({1: 2, -1: 1, -2: _GOOD[-2][:31], -3: _GOOD[-3]}),
        cbor2.dumps({1: 2, -1: 1, -2: _GOOD[-2]}),  # compressed form: y missing
        cbor2.dumps({1: 2, -1: 1, -2: _GOOD[-2], -3: bytes(32)}),  # not on the curve
        cbor2.dumps({1: 2, -1: 1, -2: _GOOD[-2], -3: _GOOD[-3], -4: _OTHER[-4]}),  # d mismatch
        cbor2.dumps({1: 2, -1: 1, -2: _GOOD[-2], -3: _GOOD[-3], -4: bytes(32)}),  # d = 0
        cbor2.dumps({1: 1, -1: 4, -2: _GOOD_ED[-2]}),  # X25519 is not a signing curve
        cbor2.dumps({1: 1, -1: 6, -2: _GOOD_ED[-2], -4: _OTHER[-4]}),  # d mismatch
        cbor2.dumps({1: True, -1: 6, -2: _GOOD_ED[-2]}),
        cbor2.dumps(_GOOD)[:-3],  # truncated
        cbor2.dumps(_GOOD) + b"\x00",  # trailing bytes
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        _rsa_pem(),
        _p384_pem(),
        _encrypted_pem(),
        "c0ffee",
        12345,
    ],
)
def test_bad_key_input_raises_cose_error(data):
    with pytest.raises(CoseError):
        load_public_key(data)


def test_from_cose_key_refuses_non_maps():
    with pytest.raises(CoseError, match="CBOR map"):
        TeepKey.from_cose_key(cbor2.dumps([1, 2, 3]))
    with pytest.raises(CoseError):
        TeepKey.from_cose_key(42)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_give_only_cose_error(data):
    try:
        load_public_key(data)
    except CoseError:
        pass


@settings(deadline=None, max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from([1, 2, 3, -1, -2, -3, -4, "x"]),
        st.one_of(st.integers(-10, 10), st.binary(max_size=40), st.text(max_size=4), st.none()),
        max_size=7,
    )
)
def test_random_cose_key_maps_give_only_cose_error(cose_key):
    try:
        TeepKey.from_cose_key(cbor2.dumps(cose_key))
    except CoseError:
        pass
