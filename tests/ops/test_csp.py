"""Content-Security-Policy on portal pages; the TEEP endpoint keeps its own."""

import re

import pytest
from django.conf import settings
from django.test import Client

from apps.accounts import roles
from tests.accounts.helpers import make_user

pytestmark = pytest.mark.django_db
TEEP = "application/teep+cbor"


@pytest.fixture
def operator_client():
    client = Client()
    client.force_login(make_user(roles.OPERATOR, username="csp-operator"))
    return client


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/devices/device/", "/api/v1/docs/", "/accounts/otp/enrol/"],
)
def test_portal_pages_carry_the_policy(operator_client, path):
    response = operator_client.get(path)
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in response["Content-Security-Policy"]


def test_the_login_page_carries_the_policy(client):
    response = client.get("/admin/login/")
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["/admin/", "/api/v1/docs/", "/accounts/otp/enrol/"])
def test_portal_pages_have_no_inline_script(operator_client, path):
    html = operator_client.get(path).content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), scripts


def test_the_swagger_initializer_is_a_script_of_our_own(operator_client):
    html = operator_client.get("/api/v1/docs/").content.decode()
    initializer = re.search(r'<script src="(/api/v1/docs/\?[^"]*script[^"]*)"', html)
    assert initializer, html
    script = operator_client.get(initializer.group(1).replace("&amp;", "&"))
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_teep_endpoint_keeps_its_own_policy(client):
    response = client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP)
    assert response["Content-Security-Policy"] == "default-src 'none'"
