"""Device groups, policies, queued actions and compromise through the API: per-role access,
the same services as the admin (queue_action, cancel_actions, mark_compromised), an audit row
for every change, domain refusals as 400 with the service's message."""

import pytest
from django.utils import timezone

from apps.accounts import roles
from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import DeliveryItem, Device, InstalledComponent, Tag
from apps.policies import services as policies
from apps.policies.models import (
    AttributeRule,
    CompromiseResponse,
    DeviceGroup,
    Policy,
    QueuedAction,
)
from tests.accounts.helpers import ANONYMOUS, ROLES_UNDER_TEST
from tests.api.conftest import token_client
from tests.components.factories import TrustedComponentFactory

pytestmark = pytest.mark.django_db
V, OP, S = roles.VIEWER, roles.OPERATOR, roles.SECURITY_OFFICER
READERS, OPERATORS, OFFICERS = {V, OP, S}, {OP, S}, {S}


def version_of(component, n, state="released"):
    return ComponentVersion.objects.create(
        component=component,
        version_label=f"{n}.0",
        sequence_number=n,
        envelope=b"\xa0",
        envelope_sha256=f"{n:064x}",
        delivery="uri",
        state=state,
        released_at=timezone.now() if state == "released" else None,
    )


@pytest.fixture
def world():
    component = TrustedComponentFactory(name="storage-ta")
    v1, v2 = version_of(component, 1), version_of(component, 2)
    tag = Tag.objects.create(name="lab")
    devices = [
        Device.objects.create(kid=f"{n:064x}", public_key=b"\xa0", name=f"lab-{n}")
        for n in range(3)
    ]
    for device in devices[:2]:
        device.tags.add(tag)
        InstalledComponent.objects.create(
            device=device,
            component_key=component.component_id,
            component=component,
            version=v1,
            sequence_number=1,
        )
    group = DeviceGroup.objects.create(name="lab")
    group.tags.add(tag)
    policy = Policy.objects.create(group=group, component=component, effect="required")
    action = QueuedAction.objects.create(device=devices[2], component=component, kind="install")
    response = CompromiseResponse.objects.create(
        version=version_of(component, 3, "compromised"), reason="old"
    )
    return {
        "component": component,
        "v1": v1,
        "v2": v2,
        "devices": devices,
        "group": group,
        "policy": policy,
        "action": action,
        "response": response,
        "tag": tag,
    }


def ids(world):
    return {
        "component": world["component"].pk,
        "v1": world["v1"].pk,
        "v2": world["v2"].pk,
        "device": world["devices"][0].pk,
        "group": world["group"].pk,
        "policy": world["policy"].pk,
        "action": world["action"].pk,
        "response": world["response"].pk,
    }


# (method, url, body, who may) - bodies valid enough to reach the service for permitted roles.
ENDPOINTS = [
    ("get", "/api/v1/device-groups/", None, READERS),
    ("get", "/api/v1/device-groups/{group}/", None, READERS),
    ("post", "/api/v1/device-groups/", {"name": "new"}, OPERATORS),
    ("patch", "/api/v1/device-groups/{group}/", {"description": "x"}, OPERATORS),
    ("delete", "/api/v1/device-groups/{group}/", None, OPERATORS),
    ("get", "/api/v1/policies/", None, READERS),
    ("get", "/api/v1/policies/{policy}/", None, READERS),
    ("post", "/api/v1/policies/", {}, OPERATORS),
    ("put", "/api/v1/policies/{policy}/", {}, OPERATORS),
    ("patch", "/api/v1/policies/{policy}/", {"note": "x"}, OPERATORS),
    ("delete", "/api/v1/policies/{policy}/", None, OPERATORS),
    ("get", "/api/v1/queued-actions/", None, READERS),
    ("get", "/api/v1/queued-actions/{action}/", None, READERS),
    ("post", "/api/v1/queued-actions/", {}, OPERATORS),
    ("post", "/api/v1/queued-actions/cancel/", {"ids": ["{action}"]}, OPERATORS),
    ("get", "/api/v1/compromise/", None, READERS),
    ("get", "/api/v1/compromise/{response}/", None, READERS),
    ("get", "/api/v1/compromise/preview/?version={v1}", None, OFFICERS),
    ("post", "/api/v1/compromise/", {}, OFFICERS),
]


def call(client, method, url, body, values):
    url = url.format(**values)
    if isinstance(body, dict):
        body = {
            k: ([int(i.format(**values)) for i in v] if isinstance(v, list) else v)
            for k, v in body.items()
        }
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body or {}, content_type="application/json")


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
@pytest.mark.parametrize(
    "method, url, body, allowed", ENDPOINTS, ids=[f"{m} {u}" for m, u, _, _ in ENDPOINTS]
)
def test_endpoint_per_role(world, method, url, body, allowed, role):
    client, _ = token_client(role)
    status = call(client, method, url, body, ids(world)).status_code
    if role == ANONYMOUS:
        assert status == 401
    elif role in allowed:
        assert status in (200, 201, 204, 400), status
    else:
        assert status == 403


@pytest.fixture
def operator():
    return token_client(OP, username="olivia")[0]


@pytest.fixture
def officer():
    return token_client(S, username="sam")[0]


# --- device groups and policies ---------------------------------------------------------------


def test_create_a_group_with_tags_and_rules_and_audit_it(operator):
    response = operator.post(
        "/api/v1/device-groups/",
        {
            "name": "model-a fleet",
            "tags": ["lab", "field"],
            "rules": [{"attribute": "hwmodel", "operator": "prefix", "value": "model-a"}],
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert sorted(body["tags"]) == ["field", "lab"] and body["rules"][0]["operator"] == "prefix"
    group = DeviceGroup.objects.get(pk=body["id"])
    assert group.created_by.username == "olivia"
    assert Tag.objects.filter(name="field").exists()
    event = AuditEvent.objects.get(action="devicegroup.add")
    assert event.actor_name == "olivia" and event.object_id == str(group.pk)


def test_writing_rules_replaces_them_and_a_bad_attribute_name_is_refused(operator, world):
    group = world["group"]
    AttributeRule.objects.create(group=group, attribute="oemid", value="x")
    url = f"/api/v1/device-groups/{group.pk}/"
    response = operator.patch(
        url, {"rules": [{"attribute": "hwmodel", "value": "m"}]}, content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    assert [(r.attribute, r.value) for r in group.rules.all()] == [("hwmodel", "m")]
    assert [t.name for t in group.tags.all()] == ["lab"]  # untouched when not given
    bad = operator.patch(
        url, {"rules": [{"attribute": "hw__model", "value": "m"}]}, content_type="application/json"
    )
    assert bad.status_code == 400 and "rules" in bad.json()
    assert AuditEvent.objects.filter(action="devicegroup.change").count() == 1


def test_policy_crud_is_audited(operator, world):
    other = TrustedComponentFactory(name="wallet-ta")
    w1 = version_of(other, 1)
    created = operator.post(
        "/api/v1/policies/",
        {
            "group": world["group"].pk,
            "component": other.pk,
            "effect": "required",
            "version": w1.pk,
            "note": "pin",
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (
        body["group_name"] == "lab"
        and body["component_name"] == "wallet-ta"
        and body["version_label"] == "1.0"
    )
    url = f"/api/v1/policies/{body['id']}/"
    assert (
        operator.patch(url, {"effect": "forbidden"}, content_type="application/json").json()[
            "effect"
        ]
        == "forbidden"
    )
    assert operator.delete(url).status_code == 204
    assert not Policy.objects.filter(pk=body["id"]).exists()
    assert list(
        AuditEvent.objects.filter(object_type="policies.Policy")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["policy.add", "policy.change", "policy.delete"]


def test_a_pinned_version_must_belong_to_the_component(operator, world):
    other = TrustedComponentFactory(name="wallet-ta")
    response = operator.post(
        "/api/v1/policies/",
        {
            "group": world["group"].pk,
            "component": other.pk,
            "effect": "required",
            "version": world["v1"].pk,
        },
        content_type="application/json",
    )
    assert response.status_code == 400 and "version" in response.json()


def test_one_policy_per_group_and_component(operator, world):
    response = operator.post(
        "/api/v1/policies/",
        {"group": world["group"].pk, "component": world["component"].pk, "effect": "forbidden"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert (
        Policy.objects.count() == 1 and not AuditEvent.objects.filter(action="policy.add").exists()
    )


def test_policies_filter_by_group_and_effect(world):
    client, _ = token_client(V)
    assert (
        client.get(f"/api/v1/policies/?group={world['group'].pk}&effect=required").json()["count"]
        == 1
    )
    assert client.get("/api/v1/policies/?effect=forbidden").json()["count"] == 0


# --- queued actions ---------------------------------------------------------------------------


def test_queue_for_a_group_through_queue_action(operator, world):
    response = operator.post(
        "/api/v1/queued-actions/",
        {
            "kind": "update",
            "component": world["component"].pk,
            "version": world["v2"].pk,
            "group": world["group"].pk,
            "reason": "CVE fix",
        },
        content_type="application/json",
    )
    assert response.status_code == 201 and response.json() == {"queued": 2}
    actions = QueuedAction.objects.filter(kind="update")
    assert {a.device_id for a in actions} == {d.pk for d in world["devices"][:2]}
    assert {a.created_by.username for a in actions} == {"olivia"}
    event = AuditEvent.objects.get(action="queued_action.update")
    assert event.actor_name == "olivia" and event.detail["queued"] == 2


def test_queue_for_one_device_and_list_it_with_filters(operator, world):
    device = world["devices"][0]
    response = operator.post(
        "/api/v1/queued-actions/",
        {"kind": "remove", "component": world["component"].pk, "device": device.pk},
        content_type="application/json",
    )
    assert response.json() == {"queued": 1}
    listed = operator.get(
        f"/api/v1/queued-actions/?device={device.pk}&kind=remove&open=true"
    ).json()
    assert listed["count"] == 1 and listed["results"][0]["device_name"] == "lab-0"
    assert operator.get("/api/v1/queued-actions/?open=false").json()["count"] == 0


def test_queue_needs_exactly_one_target(operator, world):
    body = {"kind": "install", "component": world["component"].pk}
    assert (
        operator.post("/api/v1/queued-actions/", body, content_type="application/json").status_code
        == 400
    )
    both = {**body, "device": world["devices"][0].pk, "group": world["group"].pk}
    assert (
        operator.post("/api/v1/queued-actions/", both, content_type="application/json").status_code
        == 400
    )


def test_queue_refusals_carry_the_services_message(operator, world):
    draft = version_of(world["component"], 9, state="draft")
    response = operator.post(
        "/api/v1/queued-actions/",
        {
            "kind": "install",
            "component": world["component"].pk,
            "version": draft.pk,
            "device": world["devices"][0].pk,
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "only released versions are installed" in response.json()["detail"]
    assert not QueuedAction.objects.filter(version=draft).exists()


def test_cancel_through_cancel_actions_leaves_delivered_ones(operator, world):
    delivered = QueuedAction.objects.create(
        device=world["devices"][0], component=world["component"], kind="install", state="delivered"
    )
    response = operator.post(
        "/api/v1/queued-actions/cancel/",
        {"ids": [world["action"].pk, delivered.pk]},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json() == {"cancelled": 1}
    world["action"].refresh_from_db()
    delivered.refresh_from_db()
    assert world["action"].state == "cancelled" and delivered.state == "delivered"
    assert AuditEvent.objects.get(action="queued_action.cancel").actor_name == "olivia"


def test_queued_actions_cannot_be_edited_or_deleted(operator, world):
    url = f"/api/v1/queued-actions/{world['action'].pk}/"
    for method in ("put", "patch", "delete"):
        assert (
            getattr(operator, method)(url, {}, content_type="application/json").status_code == 405
        )


# --- compromise -------------------------------------------------------------------------------


def test_preview_shows_holders_the_replacement_choices_and_their_failures(officer, world):
    # v2 failed (for good) on one of the two holders before.
    DeliveryItem.objects.create(device=world["devices"][0], kind="install", state="failed",
                                component_key=world["component"].component_id, version=world["v2"])
    body = officer.get(f"/api/v1/compromise/preview/?version={world['v1'].pk}").json()
    assert body["version"] == world["v1"].pk and body["holders"] == 2 and body["already"] is False
    remove_only, v2 = body["choices"]
    assert (remove_only["version"], remove_only["label"], remove_only["warning"]) == (None, "remove only", "")
    assert (v2["version"], v2["failed_on"], v2["blocked_on"]) == (world["v2"].pk, 1, 0)
    assert "failed before on 1 of these devices" in v2["warning"]
    (policy,) = body["policies"]
    assert (policy["policy"], policy["group"]) == (world["policy"].pk, "lab") and "latest released" in policy["note"]
    assert officer.get("/api/v1/compromise/preview/").status_code == 400
    assert officer.get("/api/v1/compromise/preview/?version=999999").status_code == 400


def test_mark_compromised_needs_a_reason(officer, world):
    for body in ({"version": world["v1"].pk}, {"version": world["v1"].pk, "reason": "   "}):
        assert (
            officer.post("/api/v1/compromise/", body, content_type="application/json").status_code
            == 400
        )
    world["v1"].refresh_from_db()
    assert world["v1"].state == "released"


def test_mark_compromised_fans_out_and_reports_progress(
    officer, world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = officer.post(
            "/api/v1/compromise/",
            {"version": world["v1"].pk, "reason": "key leaked"},
            content_type="application/json",
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (
        body["version"] == world["v1"].pk
        and body["reason"] == "key leaked"
        and body["holders_at_mark"] == 2
    )
    assert body["marked_by_name"] == "sam"
    world["v1"].refresh_from_db()
    assert world["v1"].state == "compromised"
    event = AuditEvent.objects.get(action="component_version.compromise")
    assert event.actor_name == "sam" and event.reason == "key leaked"
    detail = officer.get(f"/api/v1/compromise/{body['id']}/").json()
    assert detail["progress"]["total"] == 2 and detail["progress"]["not_contacted"] == 2
    assert detail["progress"]["fanout_finished"] is True
    listed = officer.get("/api/v1/compromise/").json()
    assert [r["id"] for r in listed["results"]] == [body["id"], world["response"].pk]

    # Twice is refused with the service's message.
    again = officer.post(
        "/api/v1/compromise/",
        {"version": world["v1"].pk, "reason": "again"},
        content_type="application/json",
    )
    assert again.status_code == 400 and "already marked compromised" in again.json()["detail"]


def test_mark_compromised_with_a_replacement_queues_it_for_each_holder_and_audits_the_choice(
    officer, world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = officer.post(
            "/api/v1/compromise/",
            {"version": world["v1"].pk, "reason": "key leaked", "replacement": world["v2"].pk},
            content_type="application/json",
        )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["replacement"] == world["v2"].pk
    installs = QueuedAction.objects.filter(compromise=body["id"], kind="install")
    assert sorted(installs.values_list("device_id", "version_id")) == [
        (d.pk, world["v2"].pk) for d in world["devices"][:2]]
    progress = officer.get(f"/api/v1/compromise/{body['id']}/").json()["progress"]
    assert progress["replacement"] == {"version": "2.0", "total": 2, "installed": 0, "failed": 0}
    event = AuditEvent.objects.get(action="component_version.compromise")
    assert event.detail["choice"] == "2.0" and event.detail["replacement"]["version"] == world["v2"].pk


def test_a_replacement_must_be_a_released_version_of_the_same_component(officer, world):
    other = version_of(TrustedComponentFactory(name="other-ta"), 1)
    for replacement in (other.pk, world["v1"].pk):
        answer = officer.post("/api/v1/compromise/", {"version": world["v1"].pk, "reason": "x",
                                                      "replacement": replacement},
                              content_type="application/json")
        assert answer.status_code == 400 and "same component" in answer.json()["detail"]
    world["v1"].refresh_from_db()
    assert world["v1"].state == "released"


def test_the_compromise_list_matches_the_progress_function(world):
    client, _ = token_client(V)
    (row,) = [
        r
        for r in client.get("/api/v1/compromise/").json()["results"]
        if r["id"] == world["response"].pk
    ]
    assert row["progress"] == policies.compromise_progress(world["response"])
