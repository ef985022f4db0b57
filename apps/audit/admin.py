"""The audit trail in the admin: read-only for everybody, superusers included; filters by
device (name or kid), operator, action, outcome, kind and time range; CSV export of the
filtered list. Devices, components and versions are shown by name, error codes by their
TEEP names: looked up once per page (or per export chunk), never per row."""

import csv
import json
import re
from datetime import UTC, datetime, time

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from apps.audit.models import AuditEvent
from apps.audit.services import record_operator_action
from apps.dashboard.badges import state_badge
from apps.dashboard.readable import CatalogueNames, keys_in_detail, readable_detail

# Counting a large audit table is slow: the changelist counts up to this many rows.
COUNT_CAP = 10_000
# The export names devices and components per batch of rows (three queries a batch).
EXPORT_BATCH = 1000
EXPORT_COLUMNS = (
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
)


class CappedPaginator(Paginator):
    @cached_property
    def count(self):
        return self.object_list[: COUNT_CAP + 1].count()


class InputFilter(admin.SimpleListFilter):
    """A free-text filter (a device kid, a user name, a date), shown as a small form."""

    template = "admin/audit/input_filter.html"

    def lookups(self, request, model_admin):
        return [("", "")]  # the sidebar shows the filter only when it has choices

    note = ""  # shown under the field, e.g. why nothing matched

    def choices(self, changelist):
        # Every other active filter, kept as hidden fields of the form.
        yield {
            "value": self.value() or "",
            "others": [(k, v) for k, v in changelist.params.items() if k != self.parameter_name],
            "note": self.note,
        }


HEX = re.compile(r"^[0-9a-f]+$")


def device_kids(value: str) -> tuple[list[str] | None, str]:
    """What the device filter matches: (exact kids, or None for a kid prefix), and a note.

    A device name (any case) wins; then a kid or kid prefix (hex); anything else matches
    nothing and says so."""
    from apps.devices.models import Device

    value = value.strip()
    named = list(Device.objects.filter(name__iexact=value).values_list("kid", flat=True)[:50])
    if named:
        return named, ""
    if HEX.match(value.lower()):
        return None, ""
    return [], f"no device named {value!r}, and not a key id (hex)"


class DeviceFilter(InputFilter):
    title = "device (name or agent kid)"
    parameter_name = "device"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        kids, self.note = device_kids(value)
        if kids is None:
            queryset = queryset.filter(device_kid__startswith=value.lower())
            if not queryset.exists():
                self.note = f"no event for a device whose key id starts with {value.lower()}"
            return queryset
        return queryset.filter(device_kid__in=kids)


class ActorFilter(InputFilter):
    title = "operator (user name)"
    parameter_name = "actor"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        return queryset.filter(actor_name=value) if value else queryset


def _moment(value: str, *, end: bool):
    """A date (the whole day) or a date-time; naive values are in TIME_ZONE."""
    value = (value or "").strip()
    try:
        day = parse_date(value)  # a bare date first: parse_datetime would read it as midnight
        moment = (
            datetime.combine(day, time.max if end else time.min) if day else parse_datetime(value)
        )
    except ValueError:
        moment = None
    if moment is None:
        raise IncorrectLookupParameters(f"not a date: {value!r}")
    try:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        # UTC: PostgreSQL refuses some offsets Python accepts (e.g. +17:44).
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise IncorrectLookupParameters(f"not a date: {value!r}") from None


class SinceFilter(InputFilter):
    title = "since (date or date-time)"
    parameter_name = "since"

    def queryset(self, request, queryset):
        return (
            queryset.filter(created_at__gte=_moment(self.value(), end=False))
            if self.value()
            else queryset
        )


class UntilFilter(InputFilter):
    title = "until (date or date-time)"
    parameter_name = "until"

    def queryset(self, request, queryset):
        return (
            queryset.filter(created_at__lte=_moment(self.value(), end=True))
            if self.value()
            else queryset
        )


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


class AuditChangeList(ChangeList):
    """After the page's rows are read: their devices and catalogue names, in bulk."""

    def get_results(self, request):
        super().get_results(request)
        attach_names(self.result_list)


def attach_names(events) -> None:
    """Sets `_device` (id, label) and `_names` (CatalogueNames) on each event: two or three
    queries for the whole batch."""
    from apps.devices.models import Device

    events = list(events)
    kids = {e.device_kid for e in events if e.device_kid}
    devices = {
        kid: (pk, str(Device(kid=kid, name=name, registered_at=registered_at)))
        for pk, kid, name, registered_at in Device.objects.filter(kid__in=kids).values_list(
            "pk", "kid", "name", "registered_at"
        )
    } if kids else {}
    names = CatalogueNames()
    keys, ids = set(), set()
    for event in events:
        more_keys, more_ids = keys_in_detail(event.detail or {})
        keys |= more_keys
        ids |= more_ids
    names.load(keys=keys, version_ids=ids)
    for event in events:
        event._device = devices.get(event.device_kid)
        event._names = names


def _names_of(event) -> CatalogueNames:
    names = getattr(event, "_names", None)
    if names is None:  # a single event (its change page)
        attach_names([event])
        names = event._names
    return names


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everybody, superusers included."""

    list_display = (
        "when",
        "action",
        "outcome_badge",
        "who",
        "object_repr",
        "summary",
    )
    list_filter = ("kind", "outcome", "action", DeviceFilter, ActorFilter, SinceFilter, UntilFilter)
    search_fields = ("device_kid", "actor_name", "object_repr", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = CappedPaginator
    list_select_related = ("actor",)
    change_list_template = "admin/audit/auditevent/change_list.html"
    readonly_fields = ("device_link", "outcome_badge", "summary", "readable_detail")
    fields = ("created_at", "kind", "action", "outcome_badge", "actor", "actor_name", "device_kid",
              "device_link", "object_type", "object_id", "object_repr", "reason", "summary",
              "readable_detail", "detail", "source_ip")

    def get_changelist(self, request, **kwargs):
        return AuditChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="time (UTC)", ordering="created_at")
    def when(self, event):
        return timezone.localtime(event.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, event):
        return state_badge("outcome", event.outcome)

    @admin.display(description="who")
    def who(self, event):
        """The operator who acted, the device concerned, or both."""
        device = self.device_link(event) if event.device_kid else ""
        if event.actor_name and device:
            return format_html("{} <span class='quiet'>on</span> {}", event.actor_name, device)
        return event.actor_name or device or "—"

    @admin.display(description="device", ordering="device_kid")
    def device_link(self, event):
        if not event.device_kid:
            return "—"
        if not hasattr(event, "_device"):
            attach_names([event])
        if event._device is None:
            return format_html('<code title="{}">{}…</code>', event.device_kid, event.device_kid[:16])
        pk, label = event._device
        return format_html('<a href="{}" title="{}">{}</a>',
                           reverse("admin:devices_device_change", args=[pk]), event.device_kid, label)

    @admin.display(description="components")
    def summary(self, event):
        """What an exchange delivered or settled, by component name and version."""
        names = _names_of(event)
        detail = event.detail or {}
        items = [names.item(e) for key in ("deliveries", "settled") for e in detail.get(key) or []
                 if isinstance(e, dict)]
        error = readable_detail({k: detail[k] for k in ("err_code", "err_name", "numbering") if k in detail},
                                names).get("err_code", "")
        parts = [*items, *([error] if error else [])]
        return format_html_join("; ", "{}", ((p,) for p in parts)) if parts else ""

    @admin.display(description="detail, with names")
    def readable_detail(self, event):
        shown = readable_detail(event.detail or {}, _names_of(event))
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, sort_keys=True, default=str))

    def get_urls(self):
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="audit_auditevent_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The changelist's rows (its filters and search) as CSV; AUDIT_EXPORT_MAX_ROWS at most.
        Components and versions are named from the catalogue, error codes by their names."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:audit_auditevent_changelist"))
        limit = settings.AUDIT_EXPORT_MAX_ROWS
        rows = changelist.get_queryset(request)[:limit]
        # Reading the audit trail in bulk is itself worth a row.
        record_operator_action(
            actor=request.user,
            action="audit.export",
            request=request,
            detail={"query": request.GET.urlencode(), "limit": limit},
        )
        writer = csv.writer(_Echo())

        def row(event):
            names = event._names
            return [
                event.created_at.isoformat(),
                event.kind,
                _cell(event.action),
                _cell(event.outcome),
                _cell(event.actor_name),
                _cell(event.device_kid),
                _cell(event._device[1] if event._device else ""),
                _cell(event.object_type),
                _cell(event.object_id),
                _cell(event.object_repr),
                _cell(event.reason),
                event.source_ip or "",
                _cell(json.dumps(readable_detail(event.detail or {}, names), sort_keys=True)),
            ]

        def lines():
            yield writer.writerow(EXPORT_COLUMNS)
            batch = []
            for event in rows.iterator(chunk_size=EXPORT_BATCH):
                batch.append(event)
                if len(batch) == EXPORT_BATCH:
                    attach_names(batch)
                    yield from (writer.writerow(row(e)) for e in batch)
                    batch = []
            if batch:
                attach_names(batch)
                yield from (writer.writerow(row(e)) for e in batch)

        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
