"""The API calls the same services as the admin: uploads, release, withdraw, registration.
Domain refusals come back as 400 with the service's message."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.accounts import roles
from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import Device
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db
PAYLOAD = b"Hello, Secure World!"  # TEEP Appendix E's TC binary


@pytest.fixture
def operator_api():
    client, user = token_client(roles.OPERATOR, username="olivia")
    return client


def upload(client, component, *, sequence_number=1, payload=PAYLOAD, **extra):
    return client.post(
        "/api/v1/versions/binary/",
        {
            "component": component.pk,
            "sequence_number": sequence_number,
            "version_label": "1.0",
            "file": SimpleUploadedFile("ta.bin", payload),
            **extra,
        },
    )


def test_upload_a_binary_builds_a_signed_draft_and_audits_it(operator_api, component):
    response = upload(operator_api, component)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "draft" and body["sequence_number"] == 1 and body["signed_by"] == "TAM"
    assert body["binary_size"] == len(PAYLOAD)
    version = ComponentVersion.objects.get(pk=body["id"])
    assert bytes(version.envelope)
    event = AuditEvent.objects.get(action="component_version.upload-binary")
    assert event.actor_name == "olivia" and event.object_id == str(version.pk)


def test_upload_and_release_at_once(operator_api, component):
    assert upload(operator_api, component, release="true").json()["state"] == "released"


def test_a_rollback_is_refused_with_the_catalogues_message(operator_api, component):
    assert upload(operator_api, component, sequence_number=5, release="true").status_code == 201
    response = upload(operator_api, component, sequence_number=4)
    assert response.status_code == 400
    assert response.json()["field"] == "sequence_number"
    assert "sequence number" in response.json()["detail"]
    assert ComponentVersion.objects.count() == 1


def test_an_empty_binary_is_refused(operator_api, component):
    response = upload(operator_api, component, payload=b"")
    assert response.status_code == 400


def test_a_bogus_envelope_is_refused(operator_api, component):
    response = operator_api.post(
        "/api/v1/versions/envelope/",
        {
            "component": component.pk,
            "file": SimpleUploadedFile("x.suit", b"\x01\x02not cbor"),
        },
    )
    assert response.status_code == 400
    assert "SUIT envelope" in response.json()["detail"]


def test_missing_fields_are_a_400_with_field_errors(operator_api):
    response = operator_api.post("/api/v1/versions/binary/", {})
    assert response.status_code == 400
    assert {"component", "file", "sequence_number"} <= set(response.json())


def test_release_then_withdraw_with_a_reason(operator_api, component):
    version_id = upload(operator_api, component).json()["id"]
    released = operator_api.post(
        f"/api/v1/versions/{version_id}/release/", {}, content_type="application/json"
    )
    assert released.status_code == 200 and released.json()["state"] == "released"
    again = operator_api.post(
        f"/api/v1/versions/{version_id}/release/", {}, content_type="application/json"
    )
    assert again.status_code == 400 and "only a draft can be released" in again.json()["detail"]
    no_reason = operator_api.post(
        f"/api/v1/versions/{version_id}/withdraw/", {}, content_type="application/json"
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    withdrawn = operator_api.post(
        f"/api/v1/versions/{version_id}/withdraw/",
        {"reason": "bug 42"},
        content_type="application/json",
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert AuditEvent.objects.get(action="component_version.withdraw").reason == "bug 42"


def test_versions_filter_by_component_and_state(operator_api, component):
    upload(operator_api, component, sequence_number=1, release="true")
    upload(operator_api, component, sequence_number=2)
    drafts = operator_api.get(
        "/api/v1/versions/", {"component": component.pk, "state": "draft"}
    ).json()
    assert drafts["count"] == 1 and drafts["results"][0]["sequence_number"] == 2


def test_unknown_version_is_404(operator_api):
    assert (
        operator_api.post(
            "/api/v1/versions/999999/release/", {}, content_type="application/json"
        ).status_code
        == 404
    )


def test_register_an_agent_by_pem(operator_api, agent_public_pem):
    response = operator_api.post(
        "/api/v1/devices/",
        {"public_key": agent_public_pem, "name": "lab-1", "tags": ["lab", "eu"]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (
        len(body["kid"]) == 64 and body["name"] == "lab-1" and sorted(body["tags"]) == ["eu", "lab"]
    )
    assert Device.objects.get(kid=body["kid"]).state == Device.State.REGISTERED
    assert AuditEvent.objects.filter(action="device.register", device_kid=body["kid"]).exists()

    listed = operator_api.get("/api/v1/devices/", {"tag": "lab"}).json()
    assert [d["kid"] for d in listed["results"]] == [body["kid"]]
    assert operator_api.get(f"/api/v1/devices/{body['id']}/").json()["name"] == "lab-1"


def test_register_a_kidless_agent(operator_api, agent_public_pem):
    response = operator_api.post(
        "/api/v1/devices/",
        {"public_key": agent_public_pem, "accepts_kidless": True},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["accepts_kidless"] is True
    assert Device.objects.get(kid=response.json()["kid"]).accepts_kidless
    event = AuditEvent.objects.get(action="device.register")
    assert event.detail["after"]["accepts_kidless"] is True


def test_registering_the_same_key_twice_is_a_400(operator_api, agent_public_pem):
    operator_api.post(
        "/api/v1/devices/", {"public_key": agent_public_pem}, content_type="application/json"
    )
    again = operator_api.post(
        "/api/v1/devices/", {"public_key": agent_public_pem}, content_type="application/json"
    )
    assert again.status_code == 400 and "already registered" in again.json()["detail"]


def test_a_bad_key_is_a_400(operator_api):
    response = operator_api.post(
        "/api/v1/devices/", {"public_key": "-----BEGIN nonsense"}, content_type="application/json"
    )
    assert (
        response.status_code == 400 and "not a usable agent public key" in response.json()["detail"]
    )


def test_components_list_and_detail(operator_api, component):
    listed = operator_api.get("/api/v1/components/").json()
    assert listed["results"][0]["name"] == component.name
    detail = operator_api.get(f"/api/v1/components/{component.pk}/").json()
    assert detail["component_id_text"] == component.component_id_text


def test_add_a_component_in_the_readable_form_and_audit_it(operator_api):
    response = operator_api.post(
        "/api/v1/components/",
        {
            "name": "hello-ta",
            "component_id": "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta']",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["manifest_component_id_text"] == (
        "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'suit']"
    )
    event = AuditEvent.objects.get(action="component.create")
    assert event.actor_name == "olivia" and event.object_id == str(body["id"])
    # Its versions are uploaded after, as for one made in the admin.
    from apps.components.models import TrustedComponent

    assert upload(operator_api, TrustedComponent.objects.get(pk=body["id"])).status_code == 201


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": "x", "component_id": "['TEEP-Device', h'0"}, "component_id"),
        ({"name": "x", "component_id": "not hex"}, "component_id"),
        ({"component_id": "['a']"}, "name"),
    ],
)
def test_a_bad_component_is_a_400(operator_api, fields, field):
    response = operator_api.post("/api/v1/components/", fields)
    assert response.status_code == 400 and field in response.json()


def test_a_component_id_or_name_taken_is_a_400(operator_api, component):
    from apps.components import identifiers

    same_id = {"name": "other", "component_id": identifiers.readable(component.component_id_elements)}
    assert operator_api.post("/api/v1/components/", same_id).json()["field"] == "component_id"
    same_name = {"name": component.name, "component_id": "['elsewhere']"}
    response = operator_api.post("/api/v1/components/", same_name)
    assert response.status_code == 400 and "name" in response.json()
