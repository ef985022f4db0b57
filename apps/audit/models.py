"""The append-only audit trail: every TEEP exchange and every operator action.

Rows are facts: they are inserted, never changed or deleted through the product. The model
refuses save() on an existing row and delete(); its queryset refuses update() and delete();
on PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE for everybody.
"""

from django.conf import settings
from django.db import models


class AuditTrailIsAppendOnly(Exception):
    pass


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditTrailIsAppendOnly("audit events cannot be changed")

    def delete(self):
        raise AuditTrailIsAppendOnly("audit events cannot be deleted")

    def exchanges(self):
        return self.filter(kind=AuditEvent.Kind.TEEP_EXCHANGE)

    def for_device(self, device_kid_hex: str):
        return self.filter(device_kid=device_kid_hex)


class AuditEvent(models.Model):
    class Kind(models.TextChoices):
        TEEP_EXCHANGE = "teep_exchange", "TEEP exchange"
        OPERATOR_ACTION = "operator_action", "Operator action"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    # What happened, dotted: "teep.query-response", "component.upload", "version.compromise".
    action = models.CharField(max_length=80, db_index=True)
    # "ok", "dropped", "rejected", "error", ...
    outcome = models.CharField(max_length=40, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Frozen at write time: survives renaming or deleting the user.
    actor_name = models.CharField(max_length=150, blank=True)
    # The device concerned, by agent key id (hex thumbprint), so that the row outlives the device.
    device_kid = models.CharField(max_length=128, blank=True, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    reason = models.TextField(blank=True)
    # Message types, sizes, duration, why dropped; before/after for operator actions.
    detail = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["device_kid", "-created_at"], name="audit_device_time")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["teep_exchange", "operator_action", "system"]),
                name="audit_kind_valid",
            )
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AuditTrailIsAppendOnly("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditTrailIsAppendOnly("audit events cannot be deleted")
