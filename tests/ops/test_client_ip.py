"""Behind the reverse proxy the deployment requires, the client is the address the proxy saw
(X-Forwarded-For), not the proxy: per-source limits and audit rows name the agent."""

import pytest
from django.core.cache import cache
from django.test import RequestFactory

from apps.audit.models import AuditEvent
from apps.ops.clientip import client_ip

TEEP = "application/teep+cbor"


def request_from(remote, forwarded=None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().post("/tam", REMOTE_ADDR=remote, **extra)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.1"),  # no proxy configured: the header is the client's claim
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # a forged hop on the left is ignored
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.2", "203.0.113.5"),
        (1, None, "10.0.0.1"),
        (1, "not-an-address", "10.0.0.1"),
        (2, "203.0.113.5", "10.0.0.1"),  # fewer hops than proxies: not trustworthy
    ],
)
def test_client_ip(settings, proxies, forwarded, expected):
    settings.CLIENT_IP_PROXY_COUNT = proxies
    assert client_ip(request_from("10.0.0.1", forwarded)) == expected


@pytest.mark.django_db
def test_behind_the_proxy_agents_are_limited_each_on_their_own(client, settings):
    settings.CLIENT_IP_PROXY_COUNT = 1
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "2/60"
    cache.clear()

    def post(agent_address):
        return client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP,
                           REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=agent_address)

    assert [post("203.0.113.5").status_code for _ in range(3)] == [200, 200, 429]
    assert post("203.0.113.6").status_code == 200
    assert AuditEvent.objects.filter(source_ip="203.0.113.6").count() == 1
    cache.clear()
