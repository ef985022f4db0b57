"""Host admission on the TEEP endpoints (apps/tam/middleware.py): TEEP_ALLOWED_HOSTS admits
agents with a fixed Host there and nowhere else; any other refused Host on a TEEP path is
answered 400, logged with the path, and audited within a bound. Over gunicorn:
test_field_agents_over_gunicorn.py."""

import logging

import pytest
from django.core.cache import cache
from prometheus_client import REGISTRY

from apps.audit.models import AuditEvent
from apps.tam import middleware
from apps.teep.models import TeepToken
from apps.teep.wire import cose, messages
from apps.teep.wire.numbering import CURRENT, PRE_26

pytestmark = pytest.mark.django_db

TEEP = "application/teep+cbor"


@pytest.fixture(autouse=True)
def fresh_audit_budget():
    cache.clear()  # the refused-Host audit budget lives in the cache, per minute


def post(client, path="/tam", host="127.0.0.1", body=b""):
    return client.post(path, data=body, content_type=TEEP, HTTP_ACCEPT=TEEP, HTTP_HOST=host)


def test_refused_host_on_a_teep_path_gets_a_bare_400_a_log_line_and_an_audit_row(client, caplog):
    with caplog.at_level(logging.WARNING, logger="apps.tam.middleware"):
        response = post(client, "/tam/draft-25", host="example.com")
    assert response.status_code == 400
    assert response.content == b"" and "Content-Type" not in response
    event = AuditEvent.objects.get()
    assert (event.kind, event.action, event.outcome) == ("teep_exchange", "teep.connect", "dropped")
    assert "'example.com'" in event.reason and "/tam/draft-25" in event.reason
    assert event.detail["host"] == "example.com" and event.detail["path"] == "/tam/draft-25"
    assert event.source_ip == "127.0.0.1"
    logged = [r.getMessage() for r in caplog.records]
    assert any("example.com" in line and "/tam/draft-25" in line for line in logged)
    assert not TeepToken.objects.exists()  # the TAM itself never saw it


@pytest.mark.parametrize("path, numbering", [("/tam", CURRENT), ("/tam/draft-25", PRE_26)])
def test_teep_allowed_hosts_admit_a_fixed_host_on_the_teep_paths(client, settings, path, numbering):
    settings.TEEP_ALLOWED_HOSTS = ["example.com"]
    response = post(client, path, host="example.com")
    assert response.status_code == 200
    request = messages.decode(cose.parse(response.content).payload, numbering)
    assert isinstance(request, messages.QueryRequest)
    # The same middleware as every agent's request: request id, the TEEP endpoint's headers.
    assert response["X-Request-ID"] and response["Content-Security-Policy"] == "default-src 'none'"
    assert post(client, path, host="example.org").status_code == 400


@pytest.mark.parametrize(
    "allowed, host, status",
    [
        (["*"], "anything.example:8080", 200),
        ([".example.com"], "agent.example.com", 200),
        ([".example.com"], "example.org", 400),
        (["*"], "not a host!", 400),  # not a host name at all: refused whatever the list says
        ([], "example.com", 400),
    ],
)
def test_teep_allowed_hosts_follow_the_rules_of_allowed_hosts(
    client, settings, allowed, host, status
):
    settings.TEEP_ALLOWED_HOSTS = allowed
    assert post(client, host=host).status_code == status


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/devices/", "/payloads/1", "/tam/"])
def test_teep_allowed_hosts_never_admit_a_host_elsewhere(client, settings, path):
    settings.TEEP_ALLOWED_HOSTS = ["*"]
    assert client.get(path, HTTP_HOST="example.com").status_code == 400
    assert not AuditEvent.objects.exists()  # Django refuses those (and logs them) as before


def test_refusals_are_audited_within_a_bound_and_all_logged_and_counted(
    client, monkeypatch, caplog
):
    monkeypatch.setattr(middleware, "REFUSED_HOST_AUDITS_PER_MINUTE", 3)
    drops_before = REGISTRY.get_sample_value("tam_teep_drops_total", {"reason": "host"}) or 0
    with caplog.at_level(logging.WARNING, logger="apps.tam.middleware"):
        statuses = {post(client, host=f"flood{i}.invalid").status_code for i in range(6)}
    assert statuses == {400}
    assert AuditEvent.objects.count() == 3
    assert sum("TEEP request refused" in r.getMessage() for r in caplog.records) == 6
    assert REGISTRY.get_sample_value("tam_teep_drops_total", {"reason": "host"}) == drops_before + 6


def test_the_refused_host_is_shown_shortened(client):
    post(client, host="a" * 300 + ".invalid")
    event = AuditEvent.objects.get()
    assert len(event.detail["host"]) == middleware.MAX_HOST_SHOWN
