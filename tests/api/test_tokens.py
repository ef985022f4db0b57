"""API tokens: shown once, stored as a SHA-256, revocable, refused when expired or the user
is inactive."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.accounts import roles
from apps.api.models import ApiToken
from apps.api.services import create_token, revoke_token
from apps.audit.models import AuditEvent
from tests.accounts.helpers import make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/devices/"


def get(raw, keyword="Token"):
    return Client().get(URL, HTTP_AUTHORIZATION=f"{keyword} {raw}")


def test_create_api_token_prints_the_token_once_and_stores_only_its_digest():
    user = make_user(roles.VIEWER, username="vera")
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "vera", "--name", "ci", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    token = ApiToken.objects.get(user=user)
    assert raw.startswith("tam_") and len(raw) > 40
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.prefix, token.digest, token.name}
    assert "shown once" in err.getvalue()
    assert get(raw).status_code == 200
    assert AuditEvent.objects.filter(action="api-token.create", object_id=str(token.pk)).exists()


def test_create_api_token_refuses_an_unknown_user():
    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())


def test_bearer_keyword_works_too():
    _, raw = create_token(make_user(roles.VIEWER), acting_user=None)
    assert get(raw, "Bearer").status_code == 200


@pytest.mark.parametrize("header", ["Token", "Token wrong", "Token tam_unknown", "Token a b"])
def test_a_bad_token_is_401(header):
    response = Client().get(URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_no_credentials_is_401_with_the_scheme_named():
    response = Client().get(URL)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


def test_expired_token_and_inactive_user_are_refused():
    user = make_user(roles.VIEWER)
    _, expired = create_token(
        user, expires_at=timezone.now() - timedelta(seconds=1), acting_user=None
    )
    assert get(expired).status_code == 401
    _, raw = create_token(user, acting_user=None)
    user.is_active = False
    user.save()
    assert get(raw).status_code == 401


def test_a_revoked_token_stops_working():
    user = make_user(roles.VIEWER)
    token, raw = create_token(user, acting_user=None)
    revoke_token(token, acting_user=user)
    assert get(raw).status_code == 401


def test_use_is_recorded_coarsely():
    token, raw = create_token(make_user(roles.VIEWER), acting_user=None)
    get(raw)
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_token_requests_need_no_csrf_token():
    user = make_user(roles.OPERATOR)
    _, raw = create_token(user, acting_user=None)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        URL,
        {"public_key": "not a key"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {raw}",
    )
    assert response.status_code == 400  # reached the view: a domain refusal, not a CSRF 403


def test_session_requests_need_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(roles.OPERATOR))
    response = client.post(URL, {"public_key": "not a key"}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
