"""Which device sent a message (apps/tam/identify.py): by kid, and for agents that send none,
by the signature among the devices registered as kid-less, within TEEP_KIDLESS_MAX_CANDIDATES."""

import logging

import pytest

from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.services import register_agent
from apps.tam import engine, identify
from apps.teep.wire import cose, messages
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import PRE_26

from .conftest import TA_COMPONENT_ID, SimAgent
from .test_tam import connect

pytestmark = pytest.mark.django_db


class KidlessAgent(SimAgent):
    """Signs without a kid, as libteep's agent may (or with an empty one)."""

    kid: bytes | None = None

    def sign(self, message) -> bytes:
        return cose.sign1(messages.encode(message, self.numbering), self.key, self.alg, kid=self.kid)


def kidless_agent(*, flagged: bool, kind="p256", name="agent") -> KidlessAgent:
    key = TeepKey.generate(kind)
    device = register_agent(public_key_bytes=key.public_pem(), name=name, accepts_kidless=flagged)
    return KidlessAgent(key=key, device=device, numbering=PRE_26)


def send(agent, message):
    return engine.process_teep_message(agent.sign(message), numbering=agent.numbering, source_ip="192.0.2.1")


def query_response(agent, request):
    return messages.QueryResponse(
        token=request.token, tc_list=(),
        requested_tc_list=(messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),),
    )


@pytest.mark.parametrize("kind", ["p256", "ed25519"])
def test_among_two_kidless_devices_the_one_whose_key_verifies_is_recognised(trusted_app, kind):
    kidless_agent(flagged=True, name="first")
    second = kidless_agent(flagged=True, kind=kind, name="second")

    answer = send(second, query_response(second, connect(second)))

    assert answer.outcome == "update"  # recognised at once: no attestation asked
    update = second.read(answer.body)
    assert update.manifest_list == (bytes(trusted_app.envelope),)
    event = AuditEvent.objects.get(action="teep.query-response")
    assert event.device_kid == second.device.kid and event.detail["kid"] == "absent"
    # The Update's Success, kid-less too, settles it on the right device.
    assert send(second, messages.Success(token=update.token)).outcome == "nothing-due"
    assert Device.objects.get(pk=second.device.pk).installed_components.get().version == trusted_app


def test_an_empty_kid_counts_as_none(trusted_app):
    agent = kidless_agent(flagged=True)
    agent.kid = b""
    assert send(agent, query_response(agent, connect(agent))).outcome == "update"


def test_a_registered_device_not_flagged_kidless_is_an_unknown_agent_asked_to_attest(trusted_app):
    agent = kidless_agent(flagged=False)

    answer = send(agent, query_response(agent, connect(agent)))

    assert answer.outcome == "query-request" and answer.reason == "attestation required"
    assert agent.read(answer.body).challenge
    event = AuditEvent.objects.get(action="teep.query-response")
    assert event.device_kid == ""


def test_an_unknown_kidless_agent_still_goes_to_attestation(trusted_app):
    kidless_agent(flagged=True)
    stranger = KidlessAgent(key=TeepKey.generate("p256"), device=None, numbering=PRE_26)
    answer = send(stranger, query_response(stranger, connect(stranger)))
    assert answer.outcome == "query-request" and answer.reason == "attestation required"


def test_more_kidless_devices_than_the_bound_are_refused_with_a_reason(trusted_app, settings, caplog):
    settings.TEEP_KIDLESS_MAX_CANDIDATES = 2
    agents = [kidless_agent(flagged=True, name=f"a{i}") for i in range(3)]
    agent = agents[0]

    with caplog.at_level(logging.WARNING, logger="apps.tam.identify"):
        answer = send(agent, query_response(agent, connect(agent)))

    assert answer.dropped and answer.body is None
    event = AuditEvent.objects.get(action="teep.unknown", outcome="dropped")
    assert event.reason == (
        "no kid, and more than TEEP_KIDLESS_MAX_CANDIDATES (2) devices are registered as kid-less: not tried"
    )
    assert "TEEP_KIDLESS_MAX_CANDIDATES (2)" in caplog.text
    # Messages with a kid are not concerned by the bound.
    agent.kid = agent.key.kid
    assert send(agent, query_response(agent, connect(agent))).outcome == "update"


def test_the_bound_holds_the_number_of_keys_tried(trusted_app, settings, django_assert_max_num_queries):
    settings.TEEP_KIDLESS_MAX_CANDIDATES = 3
    agents = [kidless_agent(flagged=True, name=f"a{i}") for i in range(3)]
    signed = cose.parse(agents[-1].sign(query_response(agents[-1], connect(agents[-1]))))
    with django_assert_max_num_queries(3):  # the token, the candidates, the device
        assert identify.find_device(signed, PRE_26) == agents[-1].device


def test_zero_turns_kidless_matching_off(trusted_app, settings):
    settings.TEEP_KIDLESS_MAX_CANDIDATES = 0
    agent = kidless_agent(flagged=True)
    answer = send(agent, query_response(agent, connect(agent)))
    assert answer.reason == "attestation required"


def test_a_kidless_success_is_found_by_its_update_token_even_when_not_flagged(trusted_app):
    """The token path: an Update's token names the one device it was issued to."""
    agent = kidless_agent(flagged=False)
    agent.kid = agent.key.kid  # the QueryResponse with a kid; its Success without
    update = agent.read(send(agent, query_response(agent, connect(agent))).body)
    agent.kid = None
    assert send(agent, messages.Success(token=update.token)).outcome == "nothing-due"
    assert AuditEvent.objects.get(action="teep.success").device_kid == agent.device.kid


def test_a_retired_kidless_device_is_recognised_and_its_messages_dropped(trusted_app):
    from apps.devices.services import retire_device

    agent = kidless_agent(flagged=True)
    retire_device(agent.device, actor=None, reason="returned")
    answer = send(agent, query_response(agent, connect(agent)))
    assert answer.dropped and answer.reason == "device is retired"
