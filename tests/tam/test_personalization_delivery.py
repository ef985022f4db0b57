"""Personalization data goes to one device, encrypted for it, at its next contact (TEEP 4.4.3)."""

import pytest

from apps.agent.agent import TeepAgent
from apps.components import services as catalogue
from apps.devices.services import register_agent
from apps.personalization import services as personalization
from apps.personalization.models import PersonalizationData
from apps.tam import engine
from apps.tam.housekeeping import expire_unanswered_requests
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.numbering import CURRENT

pytestmark = pytest.mark.django_db

CONFIG_ID = [b"TEEP-Device", b"SecureFS", b"config.json"]
SECRET = b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'


@pytest.fixture
def device_agent(tmp_path):
    agent = TeepAgent(tmp_path / "agent")
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    device = register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name="p")
    personalization.register_device_encryption_key(
        device=device, public_key_bytes=agent.state.encryption_public_key_path.read_bytes(), actor=None)
    config = catalogue.create_component(name="config", component_id=CONFIG_ID, actor=None)
    data = personalization.store_personalization_data(device=device, component=config, plaintext=SECRET, actor=None)
    return agent, data


def exchange(agent, body=b""):
    """Feed TAM answers to the agent in-process until the TAM has nothing more to say."""
    answer = engine.process_connect(numbering=CURRENT) if not body else engine.process_teep_message(body, numbering=CURRENT)
    while answer.body is not None:
        reply = agent.handle_message(answer.body)
        if reply.body is None:
            return reply
        answer = engine.process_teep_message(reply.body, numbering=CURRENT)
    return None


def test_data_is_delivered_encrypted_and_installed(device_agent):
    agent, data = device_agent
    exchange(agent)
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.INSTALLED
    # The agent decrypted it with its own key-agreement key: the plaintext is in its TEE.
    [held] = [c for c in agent.installed_components() if list(c.component_id) == CONFIG_ID]
    assert held.payload_path.read_bytes() == SECRET
    # Nothing more is due afterwards: it is not delivered twice.
    assert exchange(agent) is None
    assert PersonalizationData.objects.get(pk=data.pk).state == PersonalizationData.State.INSTALLED


def test_another_devices_key_cannot_open_it(device_agent, tmp_path):
    from apps.teep.wire.keys import TeepKey
    from apps.teep.wire.suit import decrypt_with_key, parse_envelope

    agent, data = device_agent
    envelope = parse_envelope(personalization.build_delivery_envelope(data))
    install = envelope.manifest.command_sequences["install"]
    parameters = next(c.argument for c in install if c.name == "directive-override-parameters"
                      and "encryption-info" in c.argument)
    with pytest.raises(ValueError):
        decrypt_with_key(parameters["encryption-info"], parameters["content"], TeepKey.generate("p256"))
    assert decrypt_with_key(parameters["encryption-info"], parameters["content"], agent.encryption_key) == SECRET


def test_unanswered_update_puts_the_data_back_in_the_queue(device_agent, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from apps.devices.models import DeliveryItem

    agent, data = device_agent
    request = agent.handle_message(engine.process_connect(numbering=CURRENT).body)
    update = engine.process_teep_message(request.body, numbering=CURRENT)
    assert update.outcome == "update"
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.DELIVERED
    DeliveryItem.objects.filter(device=data.device).update(expires_at=timezone.now() - timedelta(seconds=1))
    expire_unanswered_requests()
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.PENDING
