"""apps.teep.wire.suit.personalization (no Django) and the agent's processing of it, against
TEEP Appendix E Example 3 and the SUIT CDDL."""

import hashlib

import pytest

from apps.agent.suit_processor import ManifestFailure, process_envelope
from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import (
    SuitDigest,
    build_envelope,
    decrypt_with_key,
    parse_envelope,
    verify_envelope,
)
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit.personalization import Dependency, build_personalization_envelope

from .conftest import PLAINTEXT
from .factories import CONFIG_COMPONENT_ID, CONFIG_MANIFEST_ID

TA_COMPONENT = [
    b"TEEP-Device",
    b"SecureFS",
    bytes.fromhex("8d82573a926d4754935332dc29997f74"),
    b"ta",
]
TA_MANIFEST = TA_COMPONENT[:-1] + [b"suit"]


@pytest.fixture(scope="module")
def keys():
    return {"signer": TeepKey.generate("p256"), "device": TeepKey.generate("p256")}


def build(keys, **kwargs):
    arguments = dict(
        component_id=CONFIG_COMPONENT_ID,
        manifest_component_id=CONFIG_MANIFEST_ID,
        sequence_number=3,
        plaintext=PLAINTEXT,
        recipient_key=keys["device"].public(),
        signing_key=keys["signer"],
    )
    return build_personalization_envelope(**{**arguments, **kwargs})


def process(data: bytes, key, *, installed=None, trusted=(), fetch=None):
    """The agent's processor; `installed` maps manifest digests to envelopes it holds."""
    installed = installed or {}

    def verify(envelope):
        verify_envelope(envelope, list(trusted))

    return process_envelope(
        parse_envelope(data),
        fetch=fetch or (lambda uri, size: pytest.fail(f"unexpected fetch of {uri}")),
        installed_image=lambda component_id: None,
        decrypt=lambda info, ct: decrypt_with_key(info, ct, key),
        installed_manifest=lambda digest: installed.get(digest),
        verify_dependency=verify,
    )


def ta_envelope(keys) -> bytes:
    return build_envelope(
        component_id=TA_COMPONENT,
        manifest_component_id=TA_MANIFEST,
        sequence_number=1,
        payload=b"Hello, Secure World!",
        signing_key=keys["signer"],
    )


# --- what we build ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_alg", [c.A128CTR, c.A128GCM])
@pytest.mark.parametrize("with_dependency", [False, True])
def test_built_envelope_matches_the_suit_cddl_and_verifies(
    keys, suit_cddl, content_alg, with_dependency
):
    dependency = Dependency(TA_MANIFEST, ta_envelope(keys)) if with_dependency else None
    data = build(keys, content_alg=content_alg, dependency=dependency)
    result = suit_cddl.validate(data, root_type="SUIT_Envelope")
    assert result.valid, [d.message for d in result.diagnostics]
    envelope = parse_envelope(data)
    assert verify_envelope(envelope, [keys["signer"].public()]) == keys["signer"].public()
    assert set(envelope.manifest.command_sequences) == (
        {"validate", "install", "uninstall"}
        | ({"dependency-resolution"} if with_dependency else set())
    )
    assert PLAINTEXT not in data


def test_tagged_envelope_matches_suit_start(keys, suit_cddl):
    data = build(keys, tagged=True)
    assert suit_cddl.validate(data, root_type="SUIT_start").valid
    assert parse_envelope(data).tagged


def test_validate_names_the_plaintext_digest_and_size_like_example_3(keys):
    envelope = parse_envelope(build(keys))
    validate = envelope.manifest.command_sequences["validate"]
    assert [command.name for command in validate] == [
        "directive-set-component-index",
        "directive-override-parameters",
        "condition-image-match",
    ]
    assert validate[1].argument == {
        "image-digest": SuitDigest.sha256(PLAINTEXT),
        "image-size": len(PLAINTEXT),
    }
    install = envelope.manifest.command_sequences["install"]
    assert [command.name for command in install][-2:] == [
        "directive-override-parameters",
        "directive-write",
    ]
    assert set(install[-2].argument) == {"content", "encryption-info"}


def test_recipient_kid_goes_in_the_recipient_header(keys):
    from apps.teep.wire.suit import parse_encryption_info

    envelope = parse_envelope(build(keys, recipient_kid=keys["device"].kid))
    info = envelope.manifest.command_sequences["install"][-2].argument["encryption-info"]
    (recipient,) = parse_encryption_info(info).recipients
    assert recipient.kid == keys["device"].kid and recipient.alg == c.ECDH_ES_A128KW


@pytest.mark.parametrize(
    "change, message",
    [
        ({"recipient_key": TeepKey.generate("ed25519")}, "P-256"),
        ({"content_alg": c.A256GCM}, "content_alg"),
        ({"plaintext": "text"}, "bytes"),
        ({"sequence_number": -1}, "sequence_number"),
        ({"component_id": []}, "component_id"),
    ],
)
def test_bad_arguments_are_refused(keys, change, message):
    with pytest.raises(SuitError, match=message):
        build(keys, **change)


# --- the agent processing what we build ------------------------------------------------------


def test_device_key_decrypts_another_key_cannot(keys):
    data = build(keys)
    (staged,) = process(data, keys["device"])
    assert staged.image == PLAINTEXT and list(staged.component_id) == CONFIG_COMPONENT_ID
    with pytest.raises(ManifestFailure) as failure:
        process(data, TeepKey.generate("p256"))
    assert failure.value.reason == "operation-failed"
    assert failure.value.section == c.COMMAND_SEQUENCE_BY_NAME["install"]


def test_decrypted_content_must_match_the_manifest_digest(keys):
    envelope = parse_envelope(build(keys))
    with pytest.raises(ManifestFailure) as failure:
        process_envelope(
            envelope,
            fetch=lambda uri, size: b"",
            installed_image=lambda component_id: None,
            decrypt=lambda info, ct: b"something else",  # e.g. a swapped content parameter
        )
    assert failure.value.reason == "condition-failed"
    assert failure.value.section == c.COMMAND_SEQUENCE_BY_NAME["validate"]


def test_installed_dependency_is_resolved_locally(keys):
    ta = ta_envelope(keys)
    data = build(keys, dependency=Dependency(TA_MANIFEST, ta))
    ta_digest = parse_envelope(ta).digest
    (staged,) = process(
        data, keys["device"], installed={ta_digest: ta}, trusted=[keys["signer"].public()]
    )
    assert staged.image == PLAINTEXT  # only the data component is staged


def test_dependency_not_installed_is_refused(keys):
    data = build(keys, dependency=Dependency(TA_MANIFEST, ta_envelope(keys)))
    with pytest.raises(ManifestFailure) as failure:
        process(data, keys["device"], trusted=[keys["signer"].public()])
    assert failure.value.reason == "component-unsupported"
    assert "not installed" in str(failure.value)


def test_dependency_signed_by_an_untrusted_key_is_refused(keys):
    stranger = TeepKey.generate("p256")
    ta = build_envelope(
        component_id=TA_COMPONENT,
        manifest_component_id=TA_MANIFEST,
        sequence_number=1,
        payload=b"x",
        signing_key=stranger,
    )
    data = build(keys, dependency=Dependency(TA_MANIFEST, ta))
    with pytest.raises(ManifestFailure) as failure:
        process(data, keys["device"], trusted=[keys["signer"].public()])
    assert failure.value.reason == "unauthorised"


def test_dependency_with_another_digest_is_refused(keys):
    ta, other = (
        ta_envelope(keys),
        build_envelope(
            component_id=TA_COMPONENT,
            manifest_component_id=TA_MANIFEST,
            sequence_number=2,
            payload=b"v2",
            signing_key=keys["signer"],
        ),
    )
    data = build(keys, dependency=Dependency(TA_MANIFEST, ta, uri="https://tam.example/ta.suit"))
    with pytest.raises(ManifestFailure) as failure:
        process(
            data,
            keys["device"],
            trusted=[keys["signer"].public()],
            fetch=lambda uri, size: other,  # the server hands out another manifest
        )
    assert failure.value.reason == "condition-failed"
    assert "digest" in str(failure.value)


# --- TEEP Appendix E Example 3 ---------------------------------------------------------------


@pytest.fixture
def example3(read_vector):
    return {
        "personalization": read_vector("teep/suit_personalization.hex"),
        "ta_envelope": read_vector("teep/suit_uri.hex"),
        "signer": TeepKey.from_pem(read_vector("keys/suit-example-signer.public.pem")),
        "receiver": TeepKey.from_pem(read_vector("keys/receiver-kek-kid-2.private.pem")),
    }


def test_example_3_is_processed_by_the_agent_write_and_decrypt_path(example3, suit_cddl):
    data = example3["personalization"]
    assert suit_cddl.validate(data, root_type="SUIT_Envelope").valid
    verify_envelope(parse_envelope(data), [example3["signer"]])
    ta = example3["ta_envelope"]
    (staged,) = process(
        data,
        example3["receiver"],
        installed={parse_envelope(ta).digest: ta},  # Example 1 is installed
        trusted=[example3["signer"]],
    )
    assert list(staged.component_id) == CONFIG_COMPONENT_ID
    assert staged.image == b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'
    assert len(staged.image) == 61
    assert hashlib.sha256(staged.image).hexdigest().startswith("8273468f")


def test_example_3_with_another_device_key_fails(example3):
    ta = example3["ta_envelope"]
    with pytest.raises(ManifestFailure) as failure:
        process(
            example3["personalization"],
            TeepKey.generate("p256"),
            installed={parse_envelope(ta).digest: ta},
            trusted=[example3["signer"]],
        )
    assert failure.value.reason == "operation-failed"
