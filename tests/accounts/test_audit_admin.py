"""The audit trail in the admin: filters by device, operator, action, outcome, kind and time
range; CSV export of exactly the filtered list; nothing can be changed or deleted."""

import csv
import io
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.urls import reverse

from apps.accounts import roles
from apps.audit.models import AuditEvent
from apps.audit.services import record_exchange, record_operator_action
from tests.accounts.helpers import client_for, make_user

pytestmark = pytest.mark.django_db
KID = "ab" * 32
CHANGELIST = reverse("admin:audit_auditevent_changelist")
EXPORT = reverse("admin:audit_auditevent_export")


def at(moment, record, **kwargs):
    with mock.patch("django.utils.timezone.now", return_value=moment):
        event = record(**kwargs)
    # record_exchange is a plain INSERT that returns the row's id.
    return AuditEvent.objects.get(pk=event) if isinstance(event, int) else event


@pytest.fixture
def trail():
    alice = make_user(roles.OPERATOR, username="alice")
    return [
        at(
            datetime(2026, 1, 1, 10, tzinfo=UTC),
            record_exchange,
            action="teep.query-response",
            outcome="ok",
            device_kid=KID,
        ),
        at(
            datetime(2026, 1, 2, 10, tzinfo=UTC),
            record_exchange,
            action="teep.success",
            outcome="dropped",
            device_kid="cd" * 32,
            reason='=HYPERLINK("x")',
        ),
        at(
            datetime(2026, 1, 3, 10, tzinfo=UTC),
            record_operator_action,
            actor=alice,
            action="component_version.release",
            reason="go",
            detail={"n": 1},
        ),
    ]


@pytest.fixture
def viewer():
    return client_for(roles.VIEWER)[0]


def listed(client, **params):
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return {e.action for e in response.context["cl"].result_list}


def exported(client, **params):
    response = client.get(EXPORT, params)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


FILTERS = [
    ({"device": KID}, {"teep.query-response"}),
    ({"device": "cdcd"}, {"teep.success"}),  # a kid prefix is enough
    ({"actor": "alice"}, {"component_version.release"}),
    ({"action": "teep.success"}, {"teep.success"}),
    ({"outcome": "dropped"}, {"teep.success"}),
    ({"kind": "operator_action", "actor": "alice"}, {"component_version.release"}),
    ({"since": "2026-01-02", "until": "2026-01-02"}, {"teep.success"}),
    (
        {"since": "2026-01-02T12:00:00", "kind": "operator_action", "actor": "alice"},
        {"component_version.release"},
    ),
    ({"until": "2026-01-01"}, {"teep.query-response"}),
]


@pytest.mark.parametrize("params, expected", FILTERS)
def test_changelist_filters(viewer, trail, params, expected):
    assert listed(viewer, **params) == expected


@pytest.mark.parametrize("params, expected", FILTERS)
def test_csv_export_has_exactly_the_filtered_rows(viewer, trail, params, expected):
    assert {row["action"] for row in exported(viewer, **params)} == expected


def test_csv_export_columns_and_content(viewer, trail):
    rows = exported(viewer, actor="alice")
    assert list(rows[0]) == [
        "created_at",
        "kind",
        "action",
        "outcome",
        "actor_name",
        "device_kid",
        "device",
        "object_type",
        "object_id",
        "object_repr",
        "reason",
        "source_ip",
        "detail",
    ]
    assert rows[0]["created_at"] == "2026-01-03T10:00:00+00:00"
    assert rows[0]["reason"] == "go" and rows[0]["detail"] == '{"n": 1}'


def test_csv_cells_never_start_a_formula(viewer, trail):
    row = exported(viewer, outcome="dropped")[0]
    assert row["reason"] == '\'=HYPERLINK("x")'


def test_csv_export_is_bounded_and_itself_audited(viewer, trail, settings):
    settings.AUDIT_EXPORT_MAX_ROWS = 2
    assert len(exported(viewer, kind="teep_exchange")) == 2
    settings.AUDIT_EXPORT_MAX_ROWS = 1
    assert len(exported(viewer)) == 1
    export = AuditEvent.objects.filter(action="audit.export").first()
    assert export.actor_name == "viewer" and export.detail["limit"] == 1


def test_changelist_links_to_the_export_with_its_filters(viewer, trail):
    page = viewer.get(CHANGELIST, {"outcome": "dropped"}).content.decode()
    assert f"{EXPORT}?outcome=dropped" in page


def test_a_bad_date_falls_back_to_the_changelist(viewer, trail):
    assert viewer.get(EXPORT, {"since": "soon"}).status_code == 302


@pytest.mark.parametrize("role", [roles.VIEWER, roles.ADMINISTRATOR])
def test_nobody_changes_or_deletes_an_entry_through_the_admin(trail, role):
    client, _ = client_for(role)
    event = trail[0]
    change = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert client.get(change).status_code == 200  # a read-only view
    assert client.post(change, {"outcome": "forged"}).status_code == 403
    assert (
        client.post(
            reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"


def test_superuser_cannot_either(admin_client, trail):
    event = trail[0]
    assert (
        admin_client.post(
            reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_an_odd_offset_in_the_admin_is_never_a_500(viewer, trail):
    assert listed(viewer, since="0238-08-10T10:11:12+17:44") >= {e.action for e in trail}
    assert viewer.get(EXPORT, {"since": "0001-01-01T00:00:00+01:00"}).status_code == 302


# --- Issue 14: the auditor's paths --------------------------------------------------------------


@pytest.fixture
def exchanges(db):
    """A named device that installed a catalogued component and later reported an error."""
    from django.core.files.base import ContentFile

    from apps.components import services as catalogue
    from apps.devices.models import Device

    component = catalogue.create_component(
        name="SecureFS TA", actor=None,
        component_id=[b"TEEP-Device", b"SecureFS", bytes.fromhex("8d82573a926d4754935332dc29997f74"), b"ta"],
    )
    version = catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"fs", name="fs.ta"), version_label="1.0.0",
        sequence_number=1, actor=None, release=True,
    )
    device = Device.objects.create(kid=KID, public_key=b"\xa0", name="sensor-17")
    record_exchange(action="teep.query-response", outcome="update", device_kid=KID, detail={
        "in": "query-response", "out": "update",
        "deliveries": [{"kind": "install", "component": component.component_id, "version": version.pk}],
    })
    record_exchange(action="teep.success", outcome="nothing-due", device_kid=KID, detail={
        "settled": [{"kind": "install", "component": component.component_id}],
    })
    record_exchange(action="teep.error", outcome="nothing-due", device_kid=KID, detail={
        "numbering": "draft-26", "err_code": 11, "err_name": "ERR_MANIFEST_PROCESSING_FAILED",
        "err_msg": "boom",
    })
    record_exchange(action="teep.connect", outcome="query-request", device_kid="ef" * 32)
    return device, component


def test_the_device_filter_accepts_a_device_name(viewer, exchanges):
    assert listed(viewer, device="sensor-17") == {"teep.query-response", "teep.success", "teep.error"}
    assert listed(viewer, device="SENSOR-17") == {"teep.query-response", "teep.success", "teep.error"}
    assert {row["action"] for row in exported(viewer, device="sensor-17")} == {
        "teep.query-response", "teep.success", "teep.error"}


def test_an_unknown_device_name_says_so(viewer, exchanges):
    page = viewer.get(CHANGELIST, {"device": "sensor-99"})
    assert page.status_code == 200 and not page.context["cl"].result_list
    assert "no device named &#x27;sensor-99&#x27;" in page.content.decode()


def test_the_list_names_devices_components_and_errors(viewer, exchanges, django_assert_max_num_queries):
    device, _ = exchanges
    viewer.get(CHANGELIST)
    with django_assert_max_num_queries(14):  # not one per row
        html = viewer.get(CHANGELIST, {"device": "sensor-17"}).content.decode()
    assert reverse("admin:devices_device_change", args=[device.pk]) in html
    assert ">sensor-17</a>" in html
    assert "install SecureFS TA 1.0.0" in html
    assert "ERR_MANIFEST_PROCESSING_FAILED (11)" in html
    assert component_hex(exchanges) not in html
    assert 'badge-bad">dropped' not in html and 'badge-ok">update' in html


def component_hex(exchanges):
    return exchanges[1].component_id


def test_the_csv_names_components_and_versions_not_cbor_hex(viewer, exchanges):
    rows = {row["action"]: row for row in exported(viewer, device="sensor-17")}
    assert rows["teep.query-response"]["device"] == "sensor-17"
    delivered = json.loads(rows["teep.query-response"]["detail"])["deliveries"][0]
    assert delivered == {"kind": "install", "component": "SecureFS TA", "version": "SecureFS TA 1.0.0"}
    settled = json.loads(rows["teep.success"]["detail"])["settled"][0]
    assert settled["component"] == "SecureFS TA"
    assert json.loads(rows["teep.error"]["detail"])["err_code"] == "ERR_MANIFEST_PROCESSING_FAILED (11)"
    for row in rows.values():
        assert component_hex(exchanges) not in row["detail"]


def test_a_component_the_catalogue_does_not_know_reads_as_its_id_not_hex(viewer, exchanges):
    import cbor2

    key = cbor2.dumps([b"TEEP-Device", b"Other", b"ta"], canonical=True).hex()
    record_exchange(action="teep.success", outcome="nothing-due", device_kid="ef" * 32,
                    detail={"settled": [{"kind": "remove", "component": key}]})
    (row,) = exported(viewer, device="efef")[:1]
    assert "TEEP-Device/Other/ta" in row["detail"] and key not in row["detail"]


def test_an_event_page_shows_the_detail_with_names(viewer, exchanges):
    event = AuditEvent.objects.get(action="teep.query-response")
    html = viewer.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content.decode()
    assert "SecureFS TA 1.0.0" in html and ">sensor-17</a>" in html
