"""SUIT envelopes: every vector of the drafts and of other implementations parses, re-encodes
byte for byte and verifies with its key; what we build equals the TEEP draft's Appendix E
manifests and validates against the SUIT CDDL; anything else is a SuitError."""

import binascii
import hashlib
import json

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import (
    Command,
    SuitDigest,
    build_envelope,
    check_component_allowed,
    envelope_to_bytes,
    envelope_to_json,
    parse_envelope,
    verify_envelope,
)

TC_UUID = bytes.fromhex("8D82573A926D4754935332DC29997F74")
COMPONENT = [b"TEEP-Device", b"SecureFS", TC_UUID, b"ta"]
MANIFEST_COMPONENT = [b"TEEP-Device", b"SecureFS", TC_UUID, b"suit"]
VENDOR = bytes.fromhex("C0DDD5F15243566087DB4F5B0AA26C2F")
CLASS = bytes.fromhex("DB42F7093D8C55BAA8C5265FC5820F4E")
UUID_RE = "h'8d82573a926d4754935332dc29997f74'"
EXAMPLE1_URI = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"
HMAC_KEY_FILE = "trust_anchor_hmac256_cose_key_secret_buf.bin"
HMAC_KEY = b"a" * 32  # SUIT firmware encryption Section 9: the COSE_Mac0 examples' key

SIGNED_MANIFEST_EXAMPLES = [f"suit-manifest/example{n}.hex" for n in range(6)] + [
    "suit-manifest/example2.with-severable-elements.hex"
]
UNSIGNED_MANIFEST_EXAMPLES = [f"suit-manifest/example{n}.unsigned.hex" for n in range(6)]
TEEP_EXAMPLES = ["teep/suit_uri.hex", "teep/suit_integrated.hex", "teep/suit_personalization.hex"]
ENCRYPTION_EXAMPLES_MAC0 = [
    "suit-encryption/suit-manifest-aes-kw.hex.signed",
    "suit-encryption/suit-manifest-aes-kw-content.hex.signed",
    "suit-encryption/suit-manifest-aes-kw-slot.hex.signed",
]


def read_hex(path) -> bytes:
    return binascii.unhexlify("".join(path.read_text().split()))


@pytest.fixture(scope="session")
def example_signer(vectors_dir) -> TeepKey:
    return TeepKey.from_pem((vectors_dir / "keys/suit-example-signer.private.pem").read_bytes())


@pytest.fixture(scope="session")
def trust_anchor(shared_dir) -> TeepKey:
    # interop-vectors README: every libcsuit envelope verifies with the trust-anchor key ca9e35f2...
    pem = shared_dir / "interop-vectors/libcsuit/testfiles/key/trust_anchor_secp256r1_pub.pem"
    return TeepKey.from_pem(pem.read_bytes())


@pytest.fixture(scope="session")
def ta_binary(vectors_dir) -> bytes:
    return (vectors_dir / "teep/8d82573a-926d-4754-9353-32dc29997f74.ta").read_bytes()


@pytest.fixture(scope="session")
def suit_cddl(specs_dir):
    """cddl-verifier with the complete SUIT CDDL (ENGINEERING.md 2.2), loaded once."""
    from cddl_verifier import Validator

    return Validator((specs_dir / "cddl/suit-manifest-complete.cddl").read_text())


def assert_cddl_valid(validator, data: bytes, rule: str = "SUIT_Envelope") -> None:
    result = validator.validate(data, root_type=rule)
    assert result.valid, [d.message for d in result.diagnostics]


def build_example(signing_key, ta_binary, payload_uri, **extra) -> bytes:
    return build_envelope(
        component_id=COMPONENT,
        sequence_number=3,
        payload=ta_binary,
        payload_uri=payload_uri,
        manifest_component_id=MANIFEST_COMPONENT,
        vendor_id=VENDOR,
        class_id=CLASS,
        signing_key=signing_key,
        **extra,
    )


# --- the drafts' vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNED_MANIFEST_EXAMPLES + TEEP_EXAMPLES)
def test_draft_envelope_parses_round_trips_and_verifies(name, vectors_dir, example_signer):
    data = read_hex(vectors_dir / name)
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.tagged == name.startswith("suit-manifest/")
    assert verify_envelope(envelope, [example_signer.public()]) == example_signer.public()
    json.dumps(envelope_to_json(envelope))


@pytest.mark.parametrize("name", UNSIGNED_MANIFEST_EXAMPLES)
def test_unsigned_draft_envelope_parses_but_does_not_verify(name, vectors_dir, example_signer):
    data = read_hex(vectors_dir / name)
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.authentication_blocks == ()
    with pytest.raises(SuitError, match="not signed"):
        verify_envelope(envelope, [example_signer])


def test_envelope_inside_the_teep_update_example_verifies(vectors_dir, example_signer):
    update = cbor2.loads(read_hex(vectors_dir / "teep/update.hex"))
    data = update[1][9][0]  # manifest-list (9), -26 numbering
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.authentication_blocks[0].alg == -7  # ES256: older than Appendix E
    assert "invoke" in envelope.manifest.command_sequences  # key 9 = suit-invoke in -37
    verify_envelope(envelope, [example_signer])


def test_es_ecdh_content_example_verifies(vectors_dir, example_signer):
    data = read_hex(vectors_dir / "suit-encryption/suit-manifest-es-ecdh-content.hex.signed")
    assert envelope_to_bytes(parse_envelope(data)) == data
    verify_envelope(data, [example_signer])


def test_es_ecdh_dependency_example_verifies_outer_and_integrated_dependency(
    vectors_dir, example_signer
):
    data = read_hex(vectors_dir / "suit-encryption/suit-manifest-es-ecdh-dependency.hex.signed")
    dependency_signer = TeepKey.from_pem(
        (vectors_dir / "keys/dependency-signer.private.pem").read_bytes()
    )
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert verify_envelope(envelope, [example_signer, dependency_signer]) == dependency_signer
    with pytest.raises(SuitError, match="signature does not verify"):
        verify_envelope(envelope, [example_signer])
    inner = parse_envelope(envelope.integrated_payloads["#dependency-manifest"])
    assert verify_envelope(inner, [example_signer]) == example_signer


@pytest.mark.parametrize("name", ENCRYPTION_EXAMPLES_MAC0)
def test_mac0_authenticated_examples_verify_with_the_hmac_key(name, vectors_dir, example_signer):
    data = read_hex(vectors_dir / name)
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.authentication_blocks[0].structure == "COSE_Mac0"
    assert verify_envelope(envelope, [example_signer, HMAC_KEY]) == HMAC_KEY
    with pytest.raises(SuitError, match="signature does not verify"):
        verify_envelope(envelope, [b"b" * 32])


def test_severed_members_are_checked_against_their_digests(vectors_dir):
    data = read_hex(vectors_dir / "suit-manifest/example2.with-severable-elements.hex")
    envelope = parse_envelope(data)
    assert sorted(envelope.severable_members) == ["install", "text"]
    assert set(envelope.manifest.severed) == {"install", "text"}
    assert "install" in envelope.manifest.command_sequences
    assert envelope.manifest.text is not None

    # Without the severed members the install sequence and text are simply not available.
    bare = parse_envelope(read_hex(vectors_dir / "suit-manifest/example2.hex"))
    assert "install" not in bare.manifest.command_sequences and bare.manifest.text is None
    assert set(bare.manifest.severed) == {"install", "text"}

    # Dropping them keeps the signature valid (manifest 8.6).
    stripped = envelope_to_bytes(envelope, omit=["install", "text"])
    assert stripped == read_hex(vectors_dir / "suit-manifest/example2.hex")

    # A tampered severed member is refused.
    item = cbor2.loads(data)
    item.value[20] = item.value[20][:-1] + bytes([item.value[20][-1] ^ 1])
    with pytest.raises(SuitError, match=r"severable member install \(20\) digest does not match"):
        parse_envelope(cbor2.dumps(item))


def test_example1_fields_are_decoded_with_readable_names(vectors_dir, ta_binary):
    envelope = parse_envelope(read_hex(vectors_dir / "teep/suit_uri.hex"))
    manifest = envelope.manifest
    assert not envelope.tagged
    assert manifest.version == 1 and envelope.sequence_number == 3
    assert envelope.component_ids == (tuple(COMPONENT),)
    assert envelope.manifest_component_id == tuple(MANIFEST_COMPONENT)
    assert envelope.digest.algorithm_name == "sha-256"
    assert (envelope.authentication_blocks[0].alg, envelope.authentication_blocks[0].kid) == (
        -9,
        None,
    )
    name, parameters = manifest.common.shared_sequence[0]
    assert name == "directive-override-parameters"
    assert parameters["vendor-identifier"] == VENDOR and parameters["class-identifier"] == CLASS
    assert parameters["image-digest"] == SuitDigest.sha256(ta_binary)
    assert parameters["image-size"] == 20
    assert [command.name for command in manifest.common.shared_sequence[1:]] == [
        "condition-vendor-identifier",
        "condition-class-identifier",
    ]
    assert manifest.command_sequences["install"] == (
        Command("directive-override-parameters", {"uri": EXAMPLE1_URI}),
        Command("directive-fetch", 15),
        Command("condition-image-match", 15),
    )
    assert manifest.command_sequences["uninstall"] == (Command("directive-unlink", 15),)
    assert manifest.command_sequences["uninstall"][0].code == 33

    view = envelope_to_json(envelope)
    assert view["manifest"]["components"] == [
        ["TEEP-Device", "SecureFS", f"h'{TC_UUID.hex()}'", "ta"]
    ]
    assert view["manifest"]["command_sequences"]["install"][0] == {
        "command": "directive-override-parameters",
        "argument": {"uri": EXAMPLE1_URI},
    }


def test_personalization_example_has_dependency_and_encryption_info(vectors_dir):
    envelope = parse_envelope(read_hex(vectors_dir / "teep/suit_personalization.hex"))
    manifest = envelope.manifest
    assert manifest.common.dependencies == {1: tuple(MANIFEST_COMPONENT)}
    assert [name for name, _ in manifest.command_sequences["install"]] == [
        "directive-set-component-index",
        "directive-process-dependency",
        "directive-set-component-index",
        "directive-override-parameters",
        "directive-write",
    ]
    parameters = manifest.command_sequences["install"][3].argument
    assert set(parameters) == {"content", "encryption-info"}
    json.dumps(envelope_to_json(envelope))


# --- other implementations ----------------------------------------------------------------------


def _libcsuit_files(shared_dir):
    return sorted((shared_dir / "interop-vectors/libcsuit/testfiles").glob("*.suit"))


def test_every_libcsuit_envelope_verifies_with_the_trust_anchor(shared_dir, trust_anchor):
    files = _libcsuit_files(shared_dir)
    assert len(files) == 22
    hmac_key = cbor2.loads(
        (shared_dir / "interop-vectors/libcsuit/examples-inc-keys" / HMAC_KEY_FILE).read_bytes()
    )[-1]
    for path in files:
        data = path.read_bytes()
        envelope = parse_envelope(data)
        assert envelope_to_bytes(envelope) == data, path.name
        key = verify_envelope(envelope, [trust_anchor, hmac_key])
        expected = (
            hmac_key
            if path.name
            in {"suit_manifest_expAW.suit", "suit_manifest_expAF.suit", "suit_manifest_expAFS.suit"}
            else trust_anchor
        )
        assert key == expected, path.name
        json.dumps(envelope_to_json(envelope))


def test_libcsuit_teep_examples_equal_the_drafts(shared_dir, vectors_dir):
    testfiles = shared_dir / "interop-vectors/libcsuit/testfiles"
    assert (testfiles / "suit_manifest_expU.suit").read_bytes() == read_hex(
        vectors_dir / "teep/suit_uri.hex"
    )


def test_attestam_envelope_verifies_with_the_tc_signer(shared_dir, trust_anchor):
    data = (shared_dir / "interop-vectors/AttesTAM/doc/examples/text.1.envelope.cbor").read_bytes()
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.authentication_blocks[0].kid == trust_anchor.kid  # RFC 9679 thumbprint
    assert envelope.component_ids == ((b"hello.txt",),)
    assert "#hello.txt" in envelope.integrated_payloads
    assert verify_envelope(envelope, [trust_anchor]) == trust_anchor


@pytest.mark.parametrize("folder", ["required", "optional"])
def test_dthaler_unsigned_envelopes_parse_but_fail_verification(folder, shared_dir, trust_anchor):
    (path,) = (shared_dir / "interop-vectors/dthaler-teep/tam/manifests" / folder).glob("*.cbor")
    data = path.read_bytes()
    envelope = parse_envelope(data)
    assert envelope_to_bytes(envelope) == data
    assert envelope.sequence_number == 7
    with pytest.raises(
        SuitError, match="envelope is not signed: its authentication wrapper holds only the digest"
    ):
        verify_envelope(envelope, [trust_anchor])


# --- building -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload_uri, vector", [(EXAMPLE1_URI, "teep/suit_uri.hex"), (None, "teep/suit_integrated.hex")]
)
def test_built_envelope_has_the_appendix_e_manifest(
    payload_uri, vector, vectors_dir, example_signer, ta_binary, suit_cddl
):
    expected = parse_envelope(read_hex(vectors_dir / vector))
    data = build_example(example_signer, ta_binary, payload_uri, kid=None)
    built = parse_envelope(data)
    assert built.manifest_bytes == expected.manifest_bytes
    assert built.digest == expected.digest
    assert built.digest_bytes == expected.digest_bytes
    assert verify_envelope(built, [example_signer.public()]) == example_signer.public()
    # ECDSA signatures are randomized: everything else is the draft's envelope byte for byte.
    signature = cbor2.loads(cbor2.loads(built.authentication_wrapper)[1]).value[3]
    draft_signature = cbor2.loads(cbor2.loads(expected.authentication_wrapper)[1]).value[3]
    assert data.replace(signature, draft_signature) == read_hex(vectors_dir / vector)
    assert_cddl_valid(suit_cddl, data)


def test_built_envelope_carries_the_rfc9679_kid_by_default(example_signer, ta_binary, suit_cddl):
    data = build_example(example_signer, ta_binary, EXAMPLE1_URI)
    block = parse_envelope(data).authentication_blocks[0]
    assert block.kid == example_signer.kid and block.alg == -9
    assert_cddl_valid(suit_cddl, data)


@pytest.mark.parametrize("kind, alg", [("p256", -9), ("ed25519", -19), ("p256", -7)])
def test_built_envelope_signed_with_each_algorithm_validates_and_verifies(
    kind, alg, ta_binary, suit_cddl
):
    key = TeepKey.generate(kind)
    data = build_envelope(
        component_id=[b"TEEP-Device", b"SecureFS", b"x" * 16, b"ta"],
        sequence_number=2**40,
        payload=ta_binary,
        signing_key=key,
        alg=alg,
        tagged=True,
    )
    envelope = parse_envelope(data)
    assert envelope.tagged and envelope.sequence_number == 2**40
    assert envelope.authentication_blocks[0].alg == alg
    assert verify_envelope(data, [TeepKey.generate(kind), key.public()]) == key.public()
    assert_cddl_valid(suit_cddl, data, "SUIT_start")
    # without vendor/class ids the shared sequence only sets digest and size
    assert [name for name, _ in envelope.manifest.common.shared_sequence] == [
        "directive-override-parameters"
    ]


def test_built_envelope_with_text_severs_it_and_can_drop_it(example_signer, ta_binary, suit_cddl):
    text = {
        "manifest-description": "Hello TA",
        "component-version": "1.2.3",
        "vendor-name": "Example",
    }
    data = build_example(example_signer, ta_binary, EXAMPLE1_URI, text=text)
    assert_cddl_valid(suit_cddl, data)
    envelope = parse_envelope(data)
    assert envelope.severable_members.keys() == {"text"}
    assert envelope.manifest.text["en"]["manifest-description"] == "Hello TA"
    assert envelope.manifest.text["en"][tuple(COMPONENT)]["component-version"] == "1.2.3"
    stripped = envelope_to_bytes(envelope, omit=["text"])
    assert len(stripped) < len(data)
    assert_cddl_valid(suit_cddl, stripped)
    verify_envelope(stripped, [example_signer])
    inline = build_example(example_signer, ta_binary, EXAMPLE1_URI, text=text, sever_text=False)
    assert parse_envelope(inline).severable_members == {}
    assert_cddl_valid(suit_cddl, inline)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"component_id": []}, "component_id"),
        ({"component_id": [b"a", "b"]}, "component_id"),
        ({"sequence_number": -1}, "sequence_number"),
        ({"sequence_number": True}, "sequence_number"),
        ({"payload": "text"}, "payload"),
        ({"payload_uri": ""}, "payload_uri"),
        ({"integrated_key": "tc"}, "integrated_key"),
        ({"vendor_id": b"short"}, "vendor_id"),
        ({"signing_key": None}, "signing_key"),
        ({"text": {"colour": "blue"}}, "unknown text key"),
        ({"alg": -19}, "cannot sign"),
    ],
)
def test_build_envelope_refuses_bad_arguments(change, message, example_signer):
    arguments = dict(
        component_id=COMPONENT, sequence_number=1, payload=b"x", signing_key=example_signer
    )
    arguments.update(change)
    with pytest.raises(SuitError, match=message):
        build_envelope(**arguments)


def test_build_envelope_refuses_a_public_key(example_signer):
    with pytest.raises(SuitError, match="private"):
        build_envelope(
            component_id=COMPONENT,
            sequence_number=1,
            payload=b"x",
            signing_key=example_signer.public(),
        )


# --- verification failures and the signer's components ----------------------------------


def test_wrong_key_is_refused(vectors_dir):
    with pytest.raises(SuitError, match="signature does not verify with the signer's key"):
        verify_envelope(
            read_hex(vectors_dir / "teep/suit_uri.hex"),
            [TeepKey.generate("p256"), TeepKey.generate("ed25519")],
        )


def test_no_keys_is_refused(vectors_dir):
    with pytest.raises(SuitError, match="no key"):
        verify_envelope(read_hex(vectors_dir / "teep/suit_uri.hex"), [])


def _replace_manifest(data: bytes, manifest: dict) -> bytes:
    item = cbor2.loads(data)
    item[3] = cbor2.dumps(manifest)
    return cbor2.dumps(item)


def test_changed_manifest_fails_the_digest_check(vectors_dir, example_signer):
    data = read_hex(vectors_dir / "teep/suit_uri.hex")
    manifest = cbor2.loads(cbor2.loads(data)[3])
    manifest[2] = 4  # a new sequence number without a new signature
    with pytest.raises(SuitError, match="manifest digest does not match"):
        verify_envelope(_replace_manifest(data, manifest), [example_signer])


def test_changed_manifest_with_a_matching_digest_fails_the_signature(vectors_dir, example_signer):
    data = read_hex(vectors_dir / "teep/suit_uri.hex")
    item = cbor2.loads(data)
    manifest = cbor2.loads(item[3])
    manifest[2] = 4
    item[3] = cbor2.dumps(manifest)
    wrapper = cbor2.loads(item[2])
    wrapper[0] = cbor2.dumps([-16, hashlib.sha256(cbor2.dumps(item[3])).digest()])
    item[2] = cbor2.dumps(wrapper)
    with pytest.raises(SuitError, match="signature does not verify with the signer's key"):
        verify_envelope(cbor2.dumps(item), [example_signer])


def test_component_allowed_for_the_signer(vectors_dir):
    envelope = parse_envelope(read_hex(vectors_dir / "teep/suit_uri.hex"))
    check_component_allowed(envelope, [COMPONENT])
    check_component_allowed(envelope, [[b"TEEP-Device", b"SecureFS", True]])
    check_component_allowed(
        envelope, [COMPONENT, MANIFEST_COMPONENT], include_manifest_component_id=True
    )
    with pytest.raises(
        SuitError,
        match=rf"component \['TEEP-Device', 'SecureFS', {UUID_RE}, 'suit'\] not allowed",
    ):
        check_component_allowed(envelope, [COMPONENT], include_manifest_component_id=True)
    with pytest.raises(
        SuitError,
        match=rf"component \['TEEP-Device', 'SecureFS', {UUID_RE}, 'ta'\] not allowed for this",
    ):
        check_component_allowed(
            envelope, [[b"TEEP-Device", b"SecureFS", b"other", b"ta"], [b"Other", True]]
        )


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a SUIT envelope: envelope: empty"),
        (b"\xff", "not a SUIT envelope: envelope: not valid CBOR"),
        (cbor2.dumps([1, 2]), "not a SUIT envelope: a CBOR array, expected a map"),
        (cbor2.dumps(cbor2.CBORTag(1070, {})), "bare SUIT_Manifest"),
        (cbor2.dumps(cbor2.CBORTag(18, {})), r"CBOR tag 18 \(expected 107"),
        (cbor2.dumps({3: b"\xa0"}), r"no authentication-wrapper \(2\)"),
        (cbor2.dumps({2: cbor2.dumps([cbor2.dumps([-16, b"x"])])}), r"no manifest \(3\)"),
        (cbor2.dumps({2: [1], 3: b""}), r"authentication-wrapper \(2\) is not a byte string"),
        (cbor2.dumps({2: b"\x80", 3: b"\xa0"}), "authentication-wrapper is not a non-empty array"),
        (
            cbor2.dumps({2: cbor2.dumps([cbor2.dumps([-16])]), 3: b"\xa0"}),
            "manifest digest is not a SUIT_Digest",
        ),
        (cbor2.dumps({2: cbor2.dumps([cbor2.dumps([-16, b"x"])]), 3: b"\xa0"}), "manifest-version"),
        (
            cbor2.dumps(
                {
                    2: cbor2.dumps([cbor2.dumps([-16, b"x"]), cbor2.dumps([b"", {}, None, b""])]),
                    3: b"\xa0",
                }
            ),
            "authentication block 1 is not a tagged COSE",
        ),
    ],
)
def test_invalid_envelopes_are_refused_with_the_failed_check(data, message):
    with pytest.raises(SuitError, match=message):
        parse_envelope(data)


def test_non_deterministic_encodings_are_refused(vectors_dir):
    data = read_hex(vectors_dir / "teep/suit_uri.hex")
    with pytest.raises(SuitError, match="bytes after the CBOR item"):
        parse_envelope(data + b"\x00")
    # the same map with the manifest member twice (cbor2 would silently keep the last)
    item = cbor2.loads(data)
    duplicate = bytes([0xA3]) + data[1:] + cbor2.dumps(3) + cbor2.dumps(item[3])
    with pytest.raises(SuitError, match="not in deterministic CBOR encoding"):
        parse_envelope(duplicate)
    with pytest.raises(SuitError, match="expected bytes"):
        parse_envelope("a string")


def test_manifest_problems_are_named(vectors_dir):
    data = read_hex(vectors_dir / "teep/suit_uri.hex")
    manifest = cbor2.loads(cbor2.loads(data)[3])
    cases = [
        ({**manifest, 2: -1}, "manifest-sequence-number"),
        ({k: v for k, v in manifest.items() if k != 3}, r"no common \(3\)"),
        ({**manifest, 20: cbor2.dumps([20, {21: "u"}, 21])}, "odd number of elements"),
        ({**manifest, 20: cbor2.dumps([21, "x"])}, "reporting policy"),
        ({**manifest, 20: cbor2.dumps([20, {}])}, "non-empty parameter map"),
        ({**manifest, 20: cbor2.dumps([20, {3: b"\x01"}])}, "image-digest is not a SUIT_Digest"),
        ({**manifest, 5: [1]}, "manifest-component-id is not a component identifier"),
        ({**manifest, 24: cbor2.dumps([15, [cbor2.dumps([33, 15])]])}, "at least two sequences"),
    ]
    for changed, message in cases:
        with pytest.raises(SuitError, match=message):
            parse_envelope(_replace_manifest(data, changed))


# --- mutation: nothing but SuitError -----------------------------------------------------------


def _check_never_crashes(data: bytes, keys, original_manifest: bytes | None = None) -> None:
    try:
        envelope = parse_envelope(data)
    except SuitError:
        return
    json.dumps(envelope_to_json(envelope))
    assert envelope_to_bytes(envelope) == data
    try:
        verify_envelope(envelope, keys)
    except SuitError:
        return
    if original_manifest is not None:
        # whatever else changed (an integrated payload, say), the signed manifest did not
        assert envelope.manifest_bytes == original_manifest


_VECTOR_NAMES = TEEP_EXAMPLES + ["suit-manifest/example2.with-severable-elements.hex"]


@settings(
    deadline=None, max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(0, len(_VECTOR_NAMES) - 1),
    position=st.integers(0, 10_000),
    xor=st.integers(1, 255),
)
def test_flipped_bytes_raise_only_suit_error(index, position, xor, vectors_dir, example_signer):
    data = bytearray(read_hex(vectors_dir / _VECTOR_NAMES[index]))
    original_manifest = parse_envelope(bytes(data)).manifest_bytes
    data[position % len(data)] ^= xor
    _check_never_crashes(bytes(data), [example_signer, HMAC_KEY], original_manifest)


@settings(
    deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(0, len(_VECTOR_NAMES) - 1), length=st.integers(0, 10_000))
def test_truncations_raise_only_suit_error(index, length, vectors_dir, example_signer):
    data = read_hex(vectors_dir / _VECTOR_NAMES[index])
    with pytest.raises(SuitError):
        parse_envelope(data[: length % len(data)])


_cbor_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=10),
)
_cbor_value = st.recursive(
    _cbor_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.one_of(st.integers(-30, 30), st.text(max_size=4)), children, max_size=6),
        st.builds(cbor2.CBORTag, st.sampled_from([16, 17, 18, 96, 98, 107, 112, 1070]), children),
        children.map(cbor2.dumps),  # bstr-wrapped CBOR, as SUIT nests it
    ),
    max_leaves=30,
)


@settings(deadline=None, max_examples=400)
@given(
    wrapper=_cbor_value,
    manifest=_cbor_value,
    extra=st.dictionaries(
        st.one_of(st.integers(-5, 30), st.text(max_size=4)), _cbor_value, max_size=3
    ),
    tagged=st.booleans(),
)
def test_random_maps_raise_only_suit_error(wrapper, manifest, extra, tagged):
    envelope = {
        **extra,
        2: cbor2.dumps(wrapper) if not isinstance(wrapper, bytes) else wrapper,
        3: cbor2.dumps(manifest),
    }
    item = cbor2.CBORTag(107, envelope) if tagged else envelope
    _check_never_crashes(cbor2.dumps(item), [TeepKey.generate("p256"), HMAC_KEY])


_manifest_like = st.fixed_dictionaries(
    {1: st.just(1), 2: st.integers(0, 5), 3: _cbor_value.map(cbor2.dumps)},
    optional={
        5: _cbor_value,
        7: _cbor_value.map(cbor2.dumps),
        20: st.one_of(_cbor_value.map(cbor2.dumps), _cbor_value),
        23: st.one_of(_cbor_value.map(cbor2.dumps), _cbor_value),
        24: st.lists(st.one_of(st.integers(-3, 40), _cbor_value), max_size=8).map(cbor2.dumps),
    },
)


@settings(deadline=None, max_examples=400)
@given(
    manifest=_manifest_like,
    severed=st.dictionaries(st.sampled_from([15, 16, 20, 23]), st.binary(max_size=20), max_size=2),
)
def test_random_manifests_raise_only_suit_error(manifest, severed):
    wrapper = cbor2.dumps([cbor2.dumps([-16, b"\x00" * 32])])
    envelope = {2: wrapper, 3: cbor2.dumps(manifest), **severed}
    _check_never_crashes(cbor2.dumps(envelope), [TeepKey.generate("p256")])


@settings(deadline=None, max_examples=200)
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_suit_error(data):
    _check_never_crashes(data, [HMAC_KEY])
