"""The product agent against messages shaped like other TAMs' (AttesTAM, tamproto).

AttesTAM sends SUIT_Envelope_Tagged (107) inside manifest-list: accepted (DESIGN.md decision
11), installed, and reported as usual.
"""

import pytest

from apps.agent.agent import TeepAgent
from apps.teep.wire import cose, messages
from apps.teep.wire.numbering import PRE_26
from apps.teep.wire.suit import parse_report
from tests.interop_vectors import (
    ATTESTAM_COMPONENT,
    ATTESTAM_PAYLOAD,
    attestam_envelope,
    attestam_tam_key,
    attestam_update,
    tc_developer_key,
)


@pytest.fixture
def attestam_agent(tmp_path):
    """A pre-26 agent trusting AttesTAM's TAM key and its TC developer key."""
    agent = TeepAgent(tmp_path / "agent", numbering=PRE_26)
    agent.add_tam_key(attestam_tam_key().public())
    agent.add_signer_key(tc_developer_key().public())
    return agent


def test_agent_installs_from_an_attestam_update_with_a_tagged_envelope(attestam_agent):
    token = bytes(range(16))
    update = attestam_update(token, [attestam_envelope(tagged=True)])

    reply = attestam_agent.handle_message(update)

    assert (reply.received, reply.sent, reply.failures) == ("update", "success", [])
    success = messages.decode(cose.verify(reply.body, attestam_agent.key), PRE_26)
    assert isinstance(success, messages.Success) and success.token == token
    (installed,) = attestam_agent.installed_components()
    assert installed.component_id == ATTESTAM_COMPONENT
    assert installed.read_payload() == ATTESTAM_PAYLOAD
    (report,) = success.suit_reports
    parsed = parse_report(report, key=attestam_agent.report_key.public())
    assert parsed.success and parsed.nonce == token


def test_untagged_attestam_envelope_installs_the_same(attestam_agent):
    reply = attestam_agent.handle_message(
        attestam_update(bytes(16), [attestam_envelope(tagged=False)])
    )
    assert reply.sent == "success" and reply.installed == ["hello.txt"]
