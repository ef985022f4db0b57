"""Agents in the field against the portal served by gunicorn, the production server (issue 12,
items 3 and 4), over real HTTP: the product agent sending chunked bodies or a fixed Host
installs and then removes a Trusted Component on both endpoints; bodies too large for the
TAM, written whole, are answered 413; a Host nobody admitted is answered 400 and recorded."""

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from apps.agent.agent import Behaviour, TeepAgent
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.devices.models import InstalledComponent
from apps.devices.services import register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.numbering import CURRENT, PRE_26

from .conftest import TA_COMPONENT_ID
from .gunicorn_portal import gunicorn_portal

pytestmark = pytest.mark.django_db(transaction=True)

TEEP = "application/teep+cbor"
FIXED_HOST = "example.com"  # what teep-device sends, whatever the TAM's address
ENDPOINTS = [
    pytest.param("/tam/draft-25", PRE_26, id="draft-25"),
    pytest.param("/tam", CURRENT, id="current"),
]
MIB = 1 << 20


@pytest.fixture(scope="module")
def gunicorn_url(django_db_setup, tmp_path_factory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: gunicorn reads the test database from another process")
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    # Defaults otherwise: TEEP_MAX_BODY_BYTES 1 MiB, TEEP_DISCARD_BODY_BYTES 8 MiB.
    with gunicorn_portal(log, TEEP_ALLOWED_HOSTS=FIXED_HOST) as url:
        yield url


@pytest.fixture
def portal(gunicorn_url, settings):
    settings.TAM_PUBLIC_BASE_URL = gunicorn_url  # payload URIs in the manifests built here
    return gunicorn_url


@pytest.fixture
def hello_ta(portal):
    component = catalogue.create_component(
        name="hello-ta", component_id=TA_COMPONENT_ID, actor=None
    )
    return catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0",
        sequence_number=1,
        actor=None,
        release=True,
    )


def registered_agent(tmp_path, **kwargs) -> TeepAgent:
    agent = TeepAgent(tmp_path / "agent", **kwargs)
    for key in tam_keys().public_keys:
        agent.add_tam_key(key)
    register_agent(public_key_bytes=agent.public_key_path.read_bytes(), name="field-agent")
    return agent


def install_then_remove(agent: TeepAgent, tam_uri: str, version) -> None:
    agent.request_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    # The QueryResponse was read (an unread body would be an empty POST: another QueryRequest).
    assert result.messages[:2] == [("empty", "query-request"), ("query-response", "update")]
    assert [c.sequence_number for c in agent.installed_components()] == [1]
    assert InstalledComponent.objects.get(device__kid=agent.kid.hex()).version == version

    agent.unrequest_ta(TA_COMPONENT_ID)
    result = agent.request_policy_check(tam_uri)
    assert result.ok, result.to_json()
    assert agent.installed_components() == []
    assert not InstalledComponent.objects.filter(device__kid=agent.kid.hex()).exists()


@pytest.mark.parametrize("endpoint, numbering", ENDPOINTS)
def test_agent_sending_chunked_bodies_installs_then_removes(
    tmp_path, portal, hello_ta, endpoint, numbering
):
    agent = registered_agent(tmp_path, numbering=numbering, behaviour=Behaviour(chunked_body=True))
    install_then_remove(agent, portal + endpoint, hello_ta)


@pytest.mark.parametrize("endpoint, numbering", ENDPOINTS)
def test_agent_with_a_fixed_host_admitted_by_teep_allowed_hosts_installs_then_removes(
    tmp_path, portal, hello_ta, endpoint, numbering
):
    agent = registered_agent(
        tmp_path, numbering=numbering, behaviour=Behaviour(fixed_host=FIXED_HOST)
    )
    install_then_remove(agent, portal + endpoint, hello_ta)


def post_whole_body(
    base_url: str, path: str, body: bytes, *, chunked: bool, host: str | None = None
):
    """POST the whole body before reading the answer, as a simple client does. Returns the
    status and the answer's body, or the name of the error the client met instead (a TAM that
    closes the connection unread makes the client's write fail: BrokenPipeError)."""
    address = urlsplit(base_url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    headers = {"Content-Type": TEEP, "Accept": TEEP}
    if host is not None:
        headers["Host"] = host
    # An iterable body without Content-Length goes out as Transfer-Encoding: chunked.
    data = (body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)) if chunked else body
    try:
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError as exc:
        return exc.__class__.__name__, b""
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_oversize_body_written_whole_is_answered_413(portal, chunked):
    # 8 MiB: eight times the limit, at the default discard bound (what broke in the issue).
    assert post_whole_body(portal, "/tam/draft-25", b"\0" * (8 * MIB), chunked=chunked) == (
        413,
        b"",
    )


def test_declared_length_beyond_the_discard_bound_is_answered_at_once(portal):
    """Nothing of a body announced beyond TEEP_DISCARD_BODY_BYTES is read: the 413 comes before
    the client has sent any of it."""
    address = urlsplit(portal)
    started = time.monotonic()
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    conn.putrequest("POST", "/tam")
    conn.putheader("Content-Type", TEEP)
    conn.putheader("Content-Length", str(64 * MIB))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "framing, body",
    [
        (b"Transfer-Encoding: chunked", b"zz\r\n\xa0\r\n0\r\n\r\n"),  # not a chunk size
        (b"Transfer-Encoding: chunked", b"5\r\n\xa0"),  # the client stops inside a chunk
        (b"Content-Length: 5", b"\xa0"),  # ... or before its Content-Length
    ],
    ids=["bad-chunk-size", "cut-chunk", "cut-body"],
)
def test_broken_body_framing_is_answered_400_not_500(portal, framing, body):
    address = urlsplit(portal)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            b"POST /tam HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            + TEEP.encode()
            + b"\r\n"
            + framing
            + b"\r\n\r\n"
            + body
        )
        sock.shutdown(socket.SHUT_WR)  # nothing more is coming
        assert sock.recv(12) == b"HTTP/1.1 400"
    assert not AuditEvent.objects.exists()


def test_refused_host_on_a_teep_path_is_answered_400_and_audited(portal):
    assert post_whole_body(portal, "/tam/draft-25", b"", chunked=False, host="agent.invalid") == (
        400,
        b"",
    )
    event = AuditEvent.objects.get(outcome="dropped")
    assert "agent.invalid" in event.reason and "/tam/draft-25" in event.reason
    assert event.detail["host"] == "agent.invalid"


def test_teep_allowed_hosts_do_not_admit_the_host_for_the_admin(portal):
    address = urlsplit(portal)
    for host, status in [(FIXED_HOST, 400), ("127.0.0.1", 200)]:
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        conn.request("GET", "/admin/login/", headers={"Host": host})
        assert conn.getresponse().status == status, host
        conn.close()
    # Django's own refusal (its log), not a TEEP exchange.
    assert not AuditEvent.objects.exists()
