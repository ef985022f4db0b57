"""End to end over real HTTP: the product's TEEP Agent against a live portal."""

import threading
import urllib.error
import urllib.request

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from apps.agent.agent import Behaviour, TeepAgent
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.devices.models import DeliveryItem, InstalledComponent
from apps.devices.services import register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import messages
from apps.teep.wire.numbering import PRE_26

from .conftest import TA_COMPONENT_ID, SimAgent

pytestmark = pytest.mark.django_db(transaction=True)

TEEP = "application/teep+cbor"


@pytest.fixture
def portal(live_server, settings):
    settings.TAM_PUBLIC_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def hello_ta(portal):
    component = catalogue.create_component(name="hello-ta", component_id=TA_COMPONENT_ID, actor=None)
    return catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0", sequence_number=1, actor=None, release=True,
    )


def make_agent(tmp_path, name="a", **kwargs) -> TeepAgent:
    agent = TeepAgent(tmp_path / name, **kwargs)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name=name)
    return agent


def post(url, body=b"", content_type=TEEP, accept=TEEP, method="POST"):
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_agent_installs_then_updates_then_removes_a_ta(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path)
    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(f"{portal}/tam")
    assert result.ok, result.to_json()
    assert result.messages[:2] == [("empty", "query-request"), ("query-response", "update")]
    assert [c.sequence_number for c in agent.installed_components()] == [1]
    held = InstalledComponent.objects.get(device__kid=agent.kid.hex())
    assert held.version == hello_ta

    newer = catalogue.upload_binary(
        component=hello_ta.component, binary_file=ContentFile(b"Hello, Secure World! v2", name="hello.ta"),
        version_label="2.0", sequence_number=2, actor=None, release=True,
    )
    result = agent.request_policy_check(f"{portal}/tam")
    assert result.ok and [c.sequence_number for c in agent.installed_components()] == [2]
    assert InstalledComponent.objects.get(device__kid=agent.kid.hex()).version == newer

    agent.unrequest_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(f"{portal}/tam")
    assert result.ok, result.to_json()
    assert agent.installed_components() == []
    assert not InstalledComponent.objects.filter(device__kid=agent.kid.hex()).exists()
    assert DeliveryItem.objects.filter(state="succeeded").count() == 3


def test_draft_25_agent_at_the_draft_25_endpoint(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path, numbering=PRE_26)
    agent.request_ta(TA_COMPONENT_ID)
    assert agent.request_policy_check(f"{portal}/tam/draft-25").ok
    assert len(agent.installed_components()) == 1


def test_wrong_numbering_at_the_wrong_endpoint_is_dropped(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path, numbering=PRE_26)
    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(f"{portal}/tam")
    # The agent cannot read the current-numbering QueryRequest, or the TAM drops its answer:
    # either way nothing is installed and nothing was recorded for the device.
    assert agent.installed_components() == []
    assert not InstalledComponent.objects.exists()
    assert result.http_statuses[0] == 200


def test_tampered_signature_is_dropped_with_204(tmp_path, portal, hello_ta):
    agent = make_agent(tmp_path, behaviour=Behaviour(tamper_signature=True))
    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(f"{portal}/tam")
    assert result.http_statuses == [200, 204]
    assert agent.installed_components() == []
    assert AuditEvent.objects.filter(outcome="dropped", reason__contains="signature").exists()


def test_replayed_token_is_dropped_over_http(tmp_path, portal, db):
    from apps.teep.wire import cose
    from apps.teep.wire.keys import TeepKey

    key = TeepKey.generate("p256")
    sim = SimAgent(key=key, device=register_agent(public_key_bytes=key.public_pem()))
    status, _, body = post(f"{portal}/tam")
    request = sim.read(body)
    answer = sim.sign(messages.QueryResponse(token=request.token, tc_list=()))
    assert post(f"{portal}/tam", answer)[0] == 204
    assert post(f"{portal}/tam", answer)[0] == 204
    assert AuditEvent.objects.filter(outcome="dropped", reason__contains="already used").count() == 1
    assert cose.parse(body).structure == "COSE_Sign"


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"method": "GET"}, 405),
        ({"content_type": "application/teep+cose", "body": b"\xd2\x84"}, 415),
        ({"accept": "application/json"}, 406),
        ({"body": b"\x00" * (1024 + 1)}, 413),
        ({"body": b"\xff not cbor"}, 204),
    ],
)
def test_design_table_answers_over_http(portal, settings, kwargs, status):
    settings.TEEP_MAX_BODY_BYTES = 1024
    got, headers, body = post(f"{portal}/tam", **kwargs)
    assert got == status
    if status == 405:
        assert headers["Allow"] == "POST"
    assert b"Traceback" not in body


def test_two_concurrent_exchanges_of_one_device_stay_consistent(tmp_path, portal, hello_ta):
    if connection.vendor != "postgresql":
        # Django's live server shares the test's one in-memory SQLite connection between its
        # request threads, so there is no isolation to test there.
        pytest.skip("needs PostgreSQL: the in-memory SQLite test database has one shared connection")
    from apps.teep.wire.keys import TeepKey

    key = TeepKey.generate("p256")
    sim = SimAgent(key=key, device=register_agent(public_key_bytes=key.public_pem()))
    requests = [sim.read(post(f"{portal}/tam")[2]) for _ in range(2)]
    ask = (messages.RequestedTcInfo(component_id=tuple(TA_COMPONENT_ID)),)
    bodies = [sim.sign(messages.QueryResponse(token=r.token, tc_list=(), requested_tc_list=ask)) for r in requests]
    results = [None, None]
    barrier = threading.Barrier(2)

    def exchange(index):
        barrier.wait()
        results[index] = post(f"{portal}/tam", bodies[index])

    threads = [threading.Thread(target=exchange, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(r[0] for r in results)
    # The device's row lock serializes them: one Update carries the TA, the other finds it
    # already in flight and has nothing to add.
    assert statuses == [200, 204], statuses
    assert DeliveryItem.objects.filter(device=sim.device).count() == 1
