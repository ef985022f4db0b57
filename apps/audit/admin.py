"""The audit trail in the admin: read-only for everybody, superusers included; filters by
device, operator, action, outcome, kind and time range; CSV export of the filtered list."""

import csv
import json
from datetime import UTC, datetime, time

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property

from apps.audit.models import AuditEvent
from apps.audit.services import record_operator_action

# Counting a large audit table is slow: the changelist counts up to this many rows.
COUNT_CAP = 10_000
EXPORT_COLUMNS = (
    "created_at",
    "kind",
    "action",
    "outcome",
    "actor_name",
    "device_kid",
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

    def choices(self, changelist):
        # Every other active filter, kept as hidden fields of the form.
        yield {
            "value": self.value() or "",
            "others": [(k, v) for k, v in changelist.params.items() if k != self.parameter_name],
        }


class DeviceFilter(InputFilter):
    title = "device (agent kid)"
    parameter_name = "device"

    def queryset(self, request, queryset):
        value = (self.value() or "").strip().lower()
        return queryset.filter(device_kid__startswith=value) if value else queryset


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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everybody, superusers included."""

    list_display = (
        "created_at",
        "kind",
        "action",
        "outcome",
        "actor_name",
        "device_kid",
        "object_repr",
    )
    list_filter = ("kind", "outcome", "action", DeviceFilter, ActorFilter, SinceFilter, UntilFilter)
    search_fields = ("device_kid", "actor_name", "object_repr", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    paginator = CappedPaginator
    list_select_related = ("actor",)
    change_list_template = "admin/audit/auditevent/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
        """The changelist's rows (its filters and search) as CSV; AUDIT_EXPORT_MAX_ROWS at most."""
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

        def lines():
            yield writer.writerow(EXPORT_COLUMNS)
            for event in rows.iterator(chunk_size=2000):
                yield writer.writerow(
                    [
                        event.created_at.isoformat(),
                        event.kind,
                        _cell(event.action),
                        _cell(event.outcome),
                        _cell(event.actor_name),
                        _cell(event.device_kid),
                        _cell(event.object_type),
                        _cell(event.object_id),
                        _cell(event.object_repr),
                        _cell(event.reason),
                        event.source_ip or "",
                        _cell(json.dumps(event.detail, sort_keys=True)),
                    ]
                )

        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
