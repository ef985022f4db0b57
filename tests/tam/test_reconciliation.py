"""Level-triggered reconciliation over real HTTP with the product agent (DESIGN.md "Freshness
and sessions"): whatever was lost on the way, the device's next check gets what is due.

Every QueryResponse is the truth about what the device holds: it settles what earlier Updates
asked (installed at the offered version = succeeded, not = lost), and nothing from an earlier
session (an unanswered Update, a token-less Error, a dropped Success) can hold back a due
change, least of all the removal of a compromised component.
"""

import urllib.error
import urllib.request

import pytest
from django.core.files.base import ContentFile

from apps.agent.agent import TeepAgent
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.devices.models import DeliveryItem, Device, InstalledComponent
from apps.devices.services import register_agent
from apps.policies import services as policies
from apps.policies.models import QueuedAction
from apps.policies.resolution import explain_due
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose, messages
from apps.teep.wire.suit import build_report, parse_envelope

from .conftest import TA_COMPONENT_ID

pytestmark = pytest.mark.django_db(transaction=True)

TEEP = "application/teep+cbor"


@pytest.fixture
def portal(live_server, settings):
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    return f"{live_server.url}/tam"


@pytest.fixture
def hello_ta(portal):
    component = catalogue.create_component(name="hello-ta", component_id=TA_COMPONENT_ID, actor=None)
    return catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0", sequence_number=1, actor=None, release=True,
    )


def make_agent(tmp_path, name="a") -> TeepAgent:
    agent = TeepAgent(tmp_path / name)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name=name)
    return agent


def post(url, body=b""):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": TEEP, "Accept": TEEP})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def session_until_update(agent, url):
    """Empty POST, the agent's QueryResponse; returns the TAM's signed Update (not yet given
    to the agent)."""
    status, query_request = post(url)
    assert status == 200
    reply = agent.handle_message(query_request)
    assert reply.sent == "query-response", reply.dropped
    status, update = post(url, reply.body)
    assert status == 200, "the TAM had nothing to send"
    return update


def decode_own(agent, body):
    """A message the agent signed, decoded (to build variants of it)."""
    return messages.decode(cose.verify(body, agent.key.public()), agent.numbering)


def compromise(version, reason="CVE-2026-0001: key extraction"):
    return policies.mark_compromised(version, actor=None, reason=reason)


def device_of(agent) -> Device:
    return Device.objects.get(kid=agent.kid.hex())


def test_lost_success_then_compromise_removes_at_the_next_check(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    update = session_until_update(agent, portal)
    reply = agent.handle_message(update)
    assert reply.sent == "success" and reply.installed  # installed; the Success is lost on the way
    compromise(hello_ta)

    result = agent.request_policy_check(portal)

    assert result.ok, result.to_json()
    assert result.messages == [("empty", "query-request"), ("query-response", "update"), ("success", None)]
    assert result.removed and agent.installed_components() == []
    assert not InstalledComponent.objects.filter(device=device_of(agent)).exists()
    # The lost Success's delivery was settled by what the device reported, not left in flight.
    kinds = dict(DeliveryItem.objects.filter(device=device_of(agent)).values_list("kind", "state"))
    assert kinds == {"install": "succeeded", "remove": "succeeded"}


def test_lost_update_is_offered_again_at_the_next_check(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    session_until_update(agent, portal)  # the Update never reaches the agent

    result = agent.request_policy_check(portal)

    assert result.ok, result.to_json()
    assert result.http_statuses == [200, 200, 204]
    assert [c.sequence_number for c in agent.installed_components()] == [1]
    states = sorted(DeliveryItem.objects.filter(device=device_of(agent)).values_list("state", flat=True))
    assert states == ["lost", "succeeded"]


def test_token_less_error_changes_nothing_and_the_removal_is_still_delivered(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    assert agent.request_policy_check(portal).ok and agent.installed_components()
    compromise(hello_ta)
    error = agent._sign(messages.Error(err_code=agent.numbering.err_code("ERR_TEMPORARY_ERROR"),
                                       err_msg="busy, come back later"))

    for _ in range(3):
        assert post(portal, error)[0] == 204

    device = device_of(agent)
    assert device.backoff_until is None and device.last_error_code is None
    dropped = AuditEvent.objects.filter(action="teep.error", outcome="dropped")
    assert dropped.count() == 3 and "token" in dropped.first().reason
    result = agent.request_policy_check(portal)
    assert result.ok and result.removed and agent.installed_components() == []


def test_temporary_error_back_off_never_delays_a_compromise_removal(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    assert agent.request_policy_check(portal).ok
    newer = catalogue.upload_binary(
        component=hello_ta.component, binary_file=ContentFile(b"v2", name="hello.ta"),
        version_label="2.0", sequence_number=2, actor=None, release=True,
    )
    update = session_until_update(agent, portal)  # offers 2.0; the agent is busy
    token = messages.decode(_tam_payload(update), agent.numbering).token
    error = agent._sign(messages.Error(token=token, err_code=agent.numbering.err_code("ERR_TEMPORARY_ERROR"),
                                       err_msg="busy"))
    assert post(portal, error)[0] == 204
    assert device_of(agent).backoff_until is not None
    compromise(hello_ta)  # 1.0, which the device still holds

    result = agent.request_policy_check(portal)

    assert result.ok and result.removed, result.to_json()
    assert agent.installed_components() == []
    assert newer.state == "released"  # the update waits for the back-off; the removal did not


def _tam_payload(body):
    for key in tam_keys().public_keys:
        try:
            return cose.verify(body, key)
        except ValueError:
            continue
    raise AssertionError("not signed by the TAM")


def test_dropped_success_consumes_its_token_and_its_replay_is_dropped(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    update = session_until_update(agent, portal)
    good = agent.handle_message(update).body
    token = decode_own(agent, good).token
    envelope = parse_envelope(bytes(hello_ta.envelope))
    wrong_nonce = build_report(manifest_digest=envelope.digest, manifest_uri="", nonce=b"\x00" * 32,
                               records=[], signing_key=agent.report_key)
    bad = agent._sign(messages.Success(token=token, suit_reports=[wrong_nonce]))

    assert post(portal, bad)[0] == 204
    assert post(portal, good)[0] == 204

    reasons = list(AuditEvent.objects.filter(action="teep.success", outcome="dropped")
                   .order_by("id").values_list("reason", flat=True))
    assert len(reasons) == 2 and "nonce" in reasons[0] and "already used" in reasons[1]
    # Neither Success settled the delivery; the next check's report does.
    assert DeliveryItem.objects.get(device=device_of(agent)).state == "sent"
    result = agent.request_policy_check(portal)
    assert result.ok and result.http_statuses == [200, 204]
    assert DeliveryItem.objects.get(device=device_of(agent)).state == "succeeded"


def test_killed_fan_out_and_a_lost_answer_still_remove_from_every_holder(tmp_path, portal, hello_ta, monkeypatch):
    agents = [make_agent(tmp_path, name=f"d{n}") for n in range(5)]
    for agent in agents[1:]:
        agent.request_ta(TA_COMPONENT_ID)
        assert agent.request_policy_check(portal).ok
    lossy = agents[0]
    lossy.request_ta(TA_COMPONENT_ID)
    assert lossy.handle_message(session_until_update(lossy, portal)).installed  # its Success is lost

    # The worker dies after the first batch of two: the rest of the holders get no queued action.
    from apps.policies import tasks

    monkeypatch.setattr(tasks.fan_out_compromise, "delay",
                        lambda response_id: policies.fan_out_compromise_batch(response_id, batch_size=2))
    response = compromise(hello_ta)
    assert QueuedAction.objects.filter(compromise=response).count() == 2

    for agent in agents:
        result = agent.request_policy_check(portal)
        assert result.ok and result.removed, (agent.kid.hex(), result.to_json())
        assert agent.installed_components() == []
    assert not InstalledComponent.objects.filter(version=hello_ta).exists()
    progress = policies.compromise_progress(response)
    assert progress["removed"] == progress["total"] == 5


# --- The compromise response's replacement, end to end -------------------------------------------------


@pytest.fixture
def two_releases(hello_ta):
    """hello-ta 1.0 and 1.1, required on every device by a "latest released" policy."""
    from tests.policies.factories import DeviceGroupFactory, PolicyFactory

    newer = catalogue.upload_binary(
        component=hello_ta.component, binary_file=ContentFile(b"Hello, v1.1", name="hello.ta"),
        version_label="1.1", sequence_number=2, actor=None, release=True,
    )
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=hello_ta.component)
    return hello_ta, newer


def test_remove_only_never_downgrades_a_holder_to_the_older_version(tmp_path, portal, two_releases):
    older, newer = two_releases
    agent = make_agent(tmp_path)
    assert agent.request_policy_check(portal).ok
    assert [c.sequence_number for c in agent.installed_components()] == [2]
    choices = policies.compromise_preview(newer)["choices"]
    assert [c["label"] for c in choices] == ["remove only", "1.0"]

    policies.mark_compromised(newer, actor=None, reason="CVE-2026-0002")  # remove only
    first = agent.request_policy_check(portal)
    second = agent.request_policy_check(portal)

    assert first.removed and not first.installed
    assert second.http_statuses == [200, 204] and agent.installed_components() == []
    (decision,) = explain_due(device_of(agent))
    assert decision.action == "none" and decision.reason == "no released version to offer"


def test_a_named_replacement_is_installed_in_the_same_update_as_the_removal(tmp_path, portal, two_releases):
    older, newer = two_releases
    agent = make_agent(tmp_path)
    assert agent.request_policy_check(portal).ok

    response = policies.mark_compromised(newer, actor=None, reason="CVE-2026-0002", replacement=older)
    first = agent.request_policy_check(portal)
    second = agent.request_policy_check(portal)

    # TEEP 7.2.2: the agent unlinks first, then installs: no rollback of an installed component.
    assert first.removed and first.installed and first.http_statuses == [200, 200, 204]
    assert second.http_statuses == [200, 204]
    assert [c.sequence_number for c in agent.installed_components()] == [1]
    progress = policies.compromise_progress(response)
    assert progress["removed"] == 1 and progress["replacement"]["installed"] == 1


def test_the_preview_warns_when_the_fallback_failed_on_these_holders_before(tmp_path, portal, two_releases):
    older, newer = two_releases
    agent = make_agent(tmp_path)
    assert agent.request_policy_check(portal).ok
    for _ in range(3):  # 1.0 failed three times on this device in the past
        DeliveryItem.objects.create(device=device_of(agent), kind="install", state="failed",
                                    component_key=older.component.component_id, version=older, reason="boom")
    (_, fallback) = policies.compromise_preview(newer)["choices"]
    assert (fallback["failed_on"], fallback["blocked_on"]) == (1, 1)
    assert "would not be offered to them again" in fallback["warning"]
