"""The agent's key-agreement key and personalization data: directive-write with
encryption-info (SUIT firmware encryption 4, 5.2), TEEP Appendix E Example 3."""

import binascii
import stat
from pathlib import Path

import pytest

from apps.agent import transport
from apps.agent.agent import TeepAgent
from apps.teep.wire import messages
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import parse_report
from apps.teep.wire.suit.personalization import Dependency, build_personalization_envelope

from .fake_tam import COMPONENT, MANIFEST_ID
from .test_commands import run

CONFIG = (b"TEEP-Device", b"SecureFS", b"config.json")
CONFIG_MANIFEST = (b"TEEP-Device", b"SecureFS", b"config.suit")
EXAMPLE_3_PLAINTEXT = b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'


def personalization(tam, recipient, plaintext=b"device secret", **kwargs):
    return build_personalization_envelope(
        component_id=list(CONFIG),
        manifest_component_id=list(CONFIG_MANIFEST),
        sequence_number=kwargs.pop("sequence_number", 1),
        plaintext=plaintext,
        recipient_key=recipient.public(),
        signing_key=tam.p256,
        **kwargs,
    )


def send(agent, tam, *envelopes):
    token = tam.token()
    reply = agent.handle_message(tam.update(token=token, manifests=list(envelopes)))
    return reply, tam.open(reply.body, agent.key)


def vector(relative: str, vectors_dir: Path) -> bytes:
    data = (vectors_dir / relative).read_bytes()
    return binascii.unhexlify("".join(data.decode().split())) if relative.endswith(".hex") else data


# --- the key ---------------------------------------------------------------------------------


def test_encryption_key_is_generated_once_p256_private_file_mode_600(tmp_path):
    agent = TeepAgent(tmp_path / "a")
    again = TeepAgent(tmp_path / "a")
    assert agent.encryption_key == again.encryption_key and agent.encryption_key.kind == "p256"
    mode = stat.S_IMODE((tmp_path / "a" / "keys" / "encryption.pem").stat().st_mode)
    assert mode == 0o600
    exported = TeepKey.from_pem(agent.encryption_public_key_path.read_bytes())
    assert agent.encryption_public_key_path.name == "encryption-key.pem"
    assert not exported.is_private and exported == agent.encryption_key.public()
    # One key, one purpose: neither the TEEP key nor the SUIT report key.
    assert agent.encryption_key.kid not in (agent.key.kid, agent.report_key.kid)


def test_ed25519_agent_still_has_a_p256_encryption_key(tmp_path):
    agent = TeepAgent(tmp_path / "a", key_type="ed25519")
    assert agent.encryption_key.kind == "p256"


def test_init_prints_the_encryption_key_path(tmp_path):
    state = tmp_path / "agent"
    done = run("--state", str(state), "--init", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    path = (state / "keys" / "encryption-key.pem").resolve()
    assert f"encryption key {path}" in done.stdout
    assert TeepKey.from_pem(path.read_bytes()).kind == "p256"


# --- decrypt and write -----------------------------------------------------------------------


def test_personalization_data_is_decrypted_and_installed(agent, tam):
    reply, success = send(agent, tam, personalization(tam, agent.encryption_key))
    assert isinstance(success, messages.Success), reply.failures
    report = parse_report(success.suit_reports[0], key=agent.report_key)
    assert report.success
    (component,) = agent.installed_components()
    assert component.component_id == CONFIG and component.manifest_component_id == CONFIG_MANIFEST
    assert component.read_payload() == b"device secret"
    assert component.payload_path.is_relative_to(agent.state.tee_dir)


def test_data_for_another_device_fails_and_writes_nothing(agent, tam):
    stranger = TeepKey.generate("p256")
    reply, error = send(agent, tam, personalization(tam, stranger))
    assert isinstance(error, messages.Error)
    assert error.err_code == tam.numbering.err_code("ERR_MANIFEST_PROCESSING_FAILED")
    report = parse_report(error.suit_reports[0], key=agent.report_key)
    assert report.failure.reason_name == "operation-failed"
    assert agent.installed_components() == []
    assert not agent.state.tee_dir.exists() or not any(agent.state.tee_dir.rglob("*"))
    assert "decryption failed" in reply.failures[0]


def test_newer_data_replaces_older_and_rollback_is_refused(agent, tam):
    send(agent, tam, personalization(tam, agent.encryption_key, b"v1", sequence_number=1))
    send(agent, tam, personalization(tam, agent.encryption_key, b"v2", sequence_number=2))
    _, error = send(
        agent, tam, personalization(tam, agent.encryption_key, b"v0", sequence_number=1)
    )
    assert isinstance(error, messages.Error)
    (component,) = agent.installed_components()
    assert component.read_payload() == b"v2"


def test_ta_and_its_data_in_one_update(agent, tam):
    ta = tam.envelope(b"the TA")
    data = personalization(tam, agent.encryption_key, dependency=Dependency(MANIFEST_ID, ta))
    reply, success = send(agent, tam, ta, data)
    assert isinstance(success, messages.Success), reply.failures
    payloads = {c.component_id: c.read_payload() for c in agent.installed_components()}
    assert payloads == {COMPONENT: b"the TA", CONFIG: b"device secret"}


def test_data_whose_ta_is_missing_is_refused(agent, tam):
    ta = tam.envelope(b"the TA")
    data = personalization(tam, agent.encryption_key, dependency=Dependency(MANIFEST_ID, ta))
    _, error = send(agent, tam, data)
    report = parse_report(error.suit_reports[0], key=agent.report_key)
    assert report.failure.reason_name == "component-unsupported"
    assert agent.installed_components() == []


# --- TEEP Appendix E Example 3 ---------------------------------------------------------------


@pytest.fixture
def example_agent(tmp_path, tam, vectors_dir, monkeypatch):
    """An agent whose key-agreement key is the example's receiver key (kid-2), trusting the
    SUIT example signer as TC signer, holding Example 1's TA."""
    state = tmp_path / "example-agent"
    (state / "keys").mkdir(parents=True)
    (state / "keys" / "encryption.pem").write_bytes(
        vector("keys/receiver-kek-kid-2.private.pem", vectors_dir)
    )
    agent = TeepAgent(state, numbering=tam.numbering)
    for key in tam.public_keys:
        agent.add_tam_key(key.public_pem())
    agent.add_signer_key(vector("keys/suit-example-signer.public.pem", vectors_dir))
    ta = vector("teep/8d82573a-926d-4754-9353-32dc29997f74.ta", vectors_dir)
    monkeypatch.setattr(transport, "fetch_payload", lambda uri, partial, **kwargs: ta)
    _, success = send(agent, tam, vector("teep/suit_uri.hex", vectors_dir))
    assert isinstance(success, messages.Success)
    return agent


def test_example_3_is_decrypted_and_installed(example_agent, tam, vectors_dir):
    reply, success = send(example_agent, tam, vector("teep/suit_personalization.hex", vectors_dir))
    assert isinstance(success, messages.Success), reply.failures
    installed = {c.component_id: c for c in example_agent.installed_components()}
    assert installed[CONFIG].read_payload() == EXAMPLE_3_PLAINTEXT
    assert installed[CONFIG].image_size == 61
    assert installed[CONFIG].sequence_number == 3


def test_example_3_without_the_receiver_key_fails(agent, tam, vectors_dir, monkeypatch):
    agent.add_signer_key(vector("keys/suit-example-signer.public.pem", vectors_dir))
    ta = vector("teep/8d82573a-926d-4754-9353-32dc29997f74.ta", vectors_dir)
    monkeypatch.setattr(transport, "fetch_payload", lambda uri, partial, **kwargs: ta)
    send(agent, tam, vector("teep/suit_uri.hex", vectors_dir))
    _, error = send(agent, tam, vector("teep/suit_personalization.hex", vectors_dir))
    report = parse_report(error.suit_reports[0], key=agent.report_key)
    assert report.failure.reason_name == "operation-failed"
    assert CONFIG not in {c.component_id for c in agent.installed_components()}
