"""Query filters of the API's lists (django-filter)."""

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import Device
from apps.policies.models import QueuedAction


class UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, normalised to UTC: PostgreSQL refuses offsets Python accepts (e.g. +17:44)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Date-time out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class DeviceFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags__name", distinct=True)
    name = django_filters.CharFilter(lookup_expr="icontains")
    seen_after = UtcIsoDateTimeFilter(field_name="last_contact_at", lookup_expr="gte")
    seen_before = UtcIsoDateTimeFilter(field_name="last_contact_at", lookup_expr="lt")

    class Meta:
        model = Device
        fields = ["kid", "state", "registration", "numbering", "ueid"]


class ComponentVersionFilter(django_filters.FilterSet):
    class Meta:
        model = ComponentVersion
        fields = ["component", "state", "delivery", "binary_sha256", "envelope_sha256"]


class AuditEventFilter(django_filters.FilterSet):
    """Same criteria as the audit admin: device, operator, action, outcome, kind, time range."""

    device = django_filters.CharFilter(field_name="device_kid", help_text="agent key id (hex)")
    actor = django_filters.CharFilter(field_name="actor_name", help_text="user name at the time")
    action = django_filters.CharFilter()
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["kind", "outcome"]


class QueuedActionFilter(django_filters.FilterSet):
    open = django_filters.BooleanFilter(method="filter_open", help_text="queued or delivered")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = QueuedAction
        fields = ["device", "component", "version", "kind", "state", "compromise"]

    def filter_open(self, queryset, name, value):
        if value is None:
            return queryset
        condition = {"state__in": QueuedAction.OPEN_STATES}
        return queryset.filter(**condition) if value else queryset.exclude(**condition)
