"""SUIT firmware encryption (-25 Sections 5-6) and TEEP 8.2 contexts: vectors, round trips."""

import binascii
import hashlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import (
    SuitDigest,
    decrypt_cose_encrypt,
    decrypt_cose_encrypt0,
    decrypt_with_key,
    encrypt_cose_encrypt,
    encrypt_cose_encrypt0,
    encrypt_for_recipient,
    parse_encryption_info,
    parse_envelope,
    verify_envelope,
)
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit.encryption import kdf_context

FIRMWARE = b"This is a real firmware image."
PERSONALIZATION = b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'
AES_KW_KEK = b"aaaaaaaaaaaaaaaa"  # kid-1, firmware encryption 6.1.2 / 6.2.2


def read_hex(path) -> bytes:
    return binascii.unhexlify("".join(path.read_text().split()))


@pytest.fixture(scope="session")
def receiver_key(vectors_dir) -> TeepKey:
    return TeepKey.from_pem((vectors_dir / "keys/receiver-kek-kid-2.private.pem").read_bytes())


@pytest.fixture(scope="session")
def suit_cddl(specs_dir):
    from cddl_verifier import Validator

    return Validator((specs_dir / "cddl/suit-manifest-complete.cddl").read_text())


def test_teep_example_3_personalization_data_decrypts(vectors_dir, receiver_key):
    envelope = parse_envelope(read_hex(vectors_dir / "teep/suit_personalization.hex"))
    signer = TeepKey.from_pem((vectors_dir / "keys/suit-example-signer.public.pem").read_bytes())
    verify_envelope(envelope, [signer])
    parameters = next(
        argument
        for name, argument in envelope.manifest.command_sequences["install"]
        if name == "directive-override-parameters"
    )
    plaintext = decrypt_with_key(parameters["encryption-info"], parameters["content"], receiver_key)
    assert plaintext == PERSONALIZATION and len(plaintext) == 61
    validate = dict(envelope.manifest.command_sequences["validate"])[
        "directive-override-parameters"
    ]
    assert validate["image-digest"] == SuitDigest.sha256(plaintext)
    assert validate["image-digest"].value.hex().startswith("8273468f")
    assert validate["image-size"] == 61


def test_kdf_context_is_the_vector(vectors_dir):
    # suit-encryption/a128kw_kdf_context.diag, written out
    expected = cbor2.dumps(
        [
            -3,
            [None, None, None],
            [None, None, None],
            [128, cbor2.dumps({1: -29}), b"SUIT Payload Encryption"],
        ]
    )
    assert kdf_context(cbor2.dumps({1: -29}), b"SUIT Payload Encryption") == expected


@pytest.mark.parametrize("mode", ["aes-ctr", "aes-gcm"])
def test_es_ecdh_vectors_decrypt(mode, vectors_dir, receiver_key):
    info = read_hex(vectors_dir / f"suit-encryption/suit-encryption-info-es-ecdh-{mode}.hex")
    ciphertext = read_hex(vectors_dir / f"suit-encryption/encrypted-payload-es-ecdh-{mode}.hex")
    assert decrypt_with_key(info, ciphertext, receiver_key) == FIRMWARE
    # the same key as a plain `cryptography` key works too
    assert decrypt_with_key(info, ciphertext, receiver_key.private_key) == FIRMWARE
    parsed = parse_encryption_info(info)
    assert parsed.content_alg == (c.A128CTR if mode == "aes-ctr" else c.A128GCM)
    assert parsed.recipients[0].alg == c.ECDH_ES_A128KW


@pytest.mark.parametrize("mode", ["aes-ctr", "aes-gcm"])
def test_aes_kw_vectors_decrypt(mode, vectors_dir):
    info = read_hex(vectors_dir / f"suit-encryption/suit-encryption-info-aes-kw-{mode}.hex")
    ciphertext = read_hex(vectors_dir / f"suit-encryption/encrypted-payload-aes-kw-{mode}.hex")
    assert decrypt_with_key(info, ciphertext, AES_KW_KEK) == FIRMWARE
    assert parse_encryption_info(info).recipients[0].kid == b"kid-1"
    with pytest.raises(SuitError, match="content key unwrap failed"):
        decrypt_with_key(info, ciphertext, b"b" * 16)


@pytest.mark.parametrize(
    "content_alg", [c.A128CTR, c.A128GCM, c.A256GCM, c.CHACHA20_POLY1305, c.A256CTR]
)
def test_round_trip_with_a_fresh_device_key(content_alg, suit_cddl):
    device = TeepKey.generate("p256")
    info, ciphertext = encrypt_for_recipient(
        PERSONALIZATION, device.public(), content_alg=content_alg, kid=device.kid
    )
    assert ciphertext != PERSONALIZATION
    assert decrypt_with_key(info, ciphertext, device) == PERSONALIZATION
    parsed = parse_encryption_info(info)
    assert parsed.ciphertext is None and parsed.recipients[0].kid == device.kid
    if content_alg in (c.A128CTR, c.A256CTR):
        assert parsed.protected == b""  # encryption 6: AES-CTR has no protected header
    if content_alg in (c.A128CTR, c.A128GCM):
        result = suit_cddl.validate(
            info, root_type="SUIT_Encryption_Info", require_deterministic=True
        )
        assert result.valid, [d.message for d in result.diagnostics]


def test_round_trip_with_x25519_and_aes_kw():
    device = X25519PrivateKey.generate()
    info, ciphertext = encrypt_for_recipient(
        FIRMWARE, device.public_key(), content_alg=c.CHACHA20_POLY1305
    )
    assert decrypt_with_key(info, ciphertext, device) == FIRMWARE
    info, ciphertext = encrypt_for_recipient(FIRMWARE, AES_KW_KEK, kid=b"kid-1")
    assert decrypt_with_key(info, ciphertext, AES_KW_KEK) == FIRMWARE


def test_wrong_key_is_refused(receiver_key):
    info, ciphertext = encrypt_for_recipient(PERSONALIZATION, receiver_key)
    with pytest.raises(SuitError, match="content key unwrap failed"):
        decrypt_with_key(info, ciphertext, TeepKey.generate("p256"))
    with pytest.raises(SuitError, match="private key"):
        decrypt_with_key(info, ciphertext, receiver_key.public())
    with pytest.raises(SuitError, match="Ed25519"):
        decrypt_with_key(info, ciphertext, TeepKey.generate("ed25519"))
    with pytest.raises(SuitError, match="does not fit the key"):
        decrypt_with_key(info, ciphertext, AES_KW_KEK)
    with pytest.raises(SuitError, match="content key unwrap failed"):
        decrypt_with_key(info, ciphertext, receiver_key, context_other=b"EAT Encryption")


def test_tampered_gcm_ciphertext_is_refused(receiver_key):
    info, ciphertext = encrypt_for_recipient(FIRMWARE, receiver_key, content_alg=c.A128GCM)
    with pytest.raises(SuitError, match="authentication tag does not match"):
        decrypt_with_key(info, ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), receiver_key)


@pytest.mark.parametrize("context", [c.CONTEXT_EAT, c.CONTEXT_SUIT_REPORT])
def test_attached_cose_encrypt_for_teep_contexts(context):
    tam = TeepKey.generate("p256")
    data = encrypt_cose_encrypt(b"an EAT", tam.public(), context_other=context)
    item = cbor2.loads(data)
    assert item.tag == 96 and isinstance(item.value[2], bytes)
    assert decrypt_cose_encrypt(data, tam, context_other=context) == b"an EAT"
    other = c.CONTEXT_EAT if context != c.CONTEXT_EAT else c.CONTEXT_SUIT_REPORT
    with pytest.raises(SuitError, match="cannot decrypt"):
        decrypt_cose_encrypt(data, tam, context_other=other)
    with pytest.raises(SuitError, match="carries its ciphertext"):
        decrypt_with_key(data, b"detached", tam, context_other=context)


def test_detached_cose_encrypt_needs_its_ciphertext():
    tam = TeepKey.generate("p256")
    data = encrypt_cose_encrypt(b"x", tam, context_other=c.CONTEXT_EAT, attached=False)
    with pytest.raises(SuitError, match="detached and none was given"):
        decrypt_cose_encrypt(data, tam, context_other=c.CONTEXT_EAT)


def test_cose_encrypt0_round_trip():
    key = bytes(range(16))
    for alg in (c.A128GCM, c.A128CTR):
        data = encrypt_cose_encrypt0(b"report", key, content_alg=alg)
        assert decrypt_cose_encrypt0(data, key) == b"report"
    with pytest.raises(SuitError, match="16-byte key"):
        decrypt_cose_encrypt0(data, b"short")


@pytest.mark.parametrize(
    "info, message",
    [
        (b"\xff", "not valid CBOR"),
        (cbor2.dumps(cbor2.CBORTag(16, [])), "CBOR tag 16 is not COSE_Encrypt"),
        (cbor2.dumps([b"", {}, None]), "array of 4"),
        (
            cbor2.dumps([b"", {1: 99, 5: b""}, None, [[b"", {}, b""]]]),
            "unsupported content encryption algorithm 99",
        ),
        (cbor2.dumps([b"", {1: -65534, 5: b"short"}, None, [[b"", {}, b""]]]), "IV"),
        (cbor2.dumps([b"", {1: -65534, 5: bytes(16)}, None, []]), "recipients"),
        (cbor2.dumps([b"", {1: -65534, 5: bytes(16)}, None, [[b"", {}]]]), "COSE_recipient"),
        (
            cbor2.dumps([cbor2.dumps({1: -65534}), {5: bytes(16)}, None, [[b"", {1: -3}, b""]]]),
            "empty protected header",
        ),
        (
            cbor2.dumps([b"", {1: -65534, 5: bytes(16)}, None, [[b"", {}, b""]]]),
            "no integer key distribution algorithm",
        ),
        (
            cbor2.dumps([b"", {1: -65534, 5: bytes(16)}, None, [[cbor2.dumps({1: -29}), {}, b""]]]),
            "no ephemeral COSE_Key",
        ),
    ],
)
def test_invalid_encryption_info_names_the_failed_check(info, message, receiver_key):
    with pytest.raises(SuitError, match=message):
        decrypt_with_key(info, b"ciphertext", receiver_key)


def test_encrypt_refuses_bad_arguments():
    with pytest.raises(SuitError, match="unsupported content encryption algorithm"):
        encrypt_for_recipient(b"x", TeepKey.generate("p256"), content_alg=-3)
    with pytest.raises(SuitError, match="Ed25519"):
        encrypt_for_recipient(b"x", TeepKey.generate("ed25519"))
    with pytest.raises(SuitError, match="P-256"):
        encrypt_for_recipient(b"x", ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(SuitError, match="16, 24 or 32 bytes"):
        encrypt_for_recipient(b"x", b"short")
    with pytest.raises(SuitError, match="plaintext"):
        encrypt_for_recipient("text", TeepKey.generate("p256"))


_RECEIVER = TeepKey.generate("p256")
_INFO, _CIPHERTEXT = encrypt_for_recipient(
    hashlib.sha256(b"x").digest(), _RECEIVER, content_alg=c.A128GCM
)


@settings(deadline=None, max_examples=300)
@given(position=st.integers(0, 10_000), xor=st.integers(1, 255), truncate=st.booleans())
def test_mutated_encryption_info_raises_only_suit_error(position, xor, truncate):
    data = bytearray(_INFO)
    if truncate:
        data = data[: position % len(data)]
    else:
        data[position % len(data)] ^= xor
    with pytest.raises(SuitError):
        decrypt_with_key(bytes(data), _CIPHERTEXT, _RECEIVER)
