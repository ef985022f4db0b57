"""DESIGN.md decision 11 end to end: a TC signer's envelope uploaded tagged (107), as AttesTAM
keeps them, is stored and sent untagged; the product agent installs it over real HTTP."""

import pytest

from apps.agent.agent import TeepAgent
from apps.components import services as catalogue
from apps.devices.services import register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.numbering import PRE_26
from tests.interop_vectors import (
    ATTESTAM_COMPONENT,
    ATTESTAM_PAYLOAD,
    attestam_envelope,
    tc_developer_key,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_tam_sends_untagged_what_was_uploaded_tagged(tmp_path, live_server, settings):
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    component = catalogue.create_component(
        name="hello.txt",
        component_id=list(ATTESTAM_COMPONENT),
        manifest_component_id=[b"manifest.text.1.suit"],  # the envelope's own
        actor=None,
    )
    catalogue.register_signer(
        name="AttesTAM developer",
        public_key_bytes=tc_developer_key().public().public_pem(),
        components=[component],
        actor=None,
    )
    catalogue.upload_signed_envelope(
        component=component,
        envelope_bytes=attestam_envelope(tagged=True),
        version_label="1",
        actor=None,
        release=True,
    )
    agent = TeepAgent(tmp_path / "agent", numbering=PRE_26)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    agent.add_signer_key(tc_developer_key().public())
    register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name="agent")
    agent.request_ta(ATTESTAM_COMPONENT)

    result = agent.request_policy_check(f"{live_server.url}/tam/draft-25")

    assert result.ok and result.installed == ["hello.txt"], result.to_json()
    (installed,) = agent.installed_components()
    assert installed.read_payload() == ATTESTAM_PAYLOAD
    # The agent keeps the manifest-list entry as received: the TAM sent it untagged.
    assert installed.envelope_path.read_bytes() == attestam_envelope(tagged=False)
