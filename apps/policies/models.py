"""Policy: which devices should hold which Trusted Components, and what operators asked for.

Nothing here is written per device when a policy changes: a device's desired state is
computed when it contacts the TAM (apps.policies.resolution). The only per-device rows are
queued actions, which an operator (or a compromise response) asks for explicitly and which
are tracked one by one: queued -> delivered -> succeeded / failed, or cancelled.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

# Attribute names become JSON key lookups (attributes__<name>): no "__", no odd characters.
attribute_name_validator = RegexValidator(
    r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", "lower-case letters, digits and single underscores"
)


class DeviceGroup(models.Model):
    """A set of devices: by tags and by rules on their attributes; a device may be in several.

    Membership: `all_devices`, or else (the device has at least one of the group's tags, when
    the group names tags) and (every attribute rule matches, when it has rules). A group with
    neither tags nor rules and without `all_devices` holds no device.
    """

    name = models.CharField(max_length=150, unique=True)
    description = models.TextField(blank=True)
    all_devices = models.BooleanField(default=False, help_text="every device, whatever its tags")
    require_attestation = models.BooleanField(
        default=False,
        help_text="members registered by hand must still attest (DESIGN.md attestation bootstrap)",
    )
    tags = models.ManyToManyField(
        "devices.Tag", blank=True, related_name="device_groups", help_text="devices with any of them"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AttributeRule(models.Model):
    """One condition on a device attribute (Device.attributes: attested claims such as
    hwmodel, oemid, hwversion, as text). Compared as text, case-sensitive."""

    class Operator(models.TextChoices):
        EQUALS = "eq", "equals"
        ONE_OF = "in", "is one of (comma-separated)"
        STARTS_WITH = "prefix", "starts with"

    group = models.ForeignKey(DeviceGroup, on_delete=models.CASCADE, related_name="rules")
    attribute = models.CharField(max_length=64, validators=[attribute_name_validator])
    operator = models.CharField(max_length=10, choices=Operator.choices, default=Operator.EQUALS)
    value = models.CharField(max_length=300)

    class Meta:
        ordering = ["group", "attribute", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(operator__in=["eq", "in", "prefix"]), name="attribute_rule_operator_valid"
            ),
            models.CheckConstraint(
                condition=Q(attribute__regex=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"),
                name="attribute_rule_name_valid",
            ),
        ]

    def __str__(self):
        return f"{self.attribute} {self.get_operator_display()} {self.value}"

    @property
    def values(self) -> list[str]:
        if self.operator == self.Operator.ONE_OF:
            return [v.strip() for v in self.value.split(",") if v.strip()]
        return [self.value]

    def matches(self, attributes: dict) -> bool:
        if self.attribute not in attributes or attributes[self.attribute] is None:
            return False
        actual = str(attributes[self.attribute])
        if self.operator == self.Operator.STARTS_WITH:
            return actual.startswith(self.value)
        return actual in self.values

    def as_q(self) -> Q:
        """The same test as matches(), for a Device queryset."""
        key = f"attributes__{self.attribute}"
        if self.operator == self.Operator.STARTS_WITH:
            return Q(**{f"{key}__startswith": self.value})
        return Q(**{f"{key}__in": self.values})


class Effect(models.TextChoices):
    REQUIRED = "required", "Required"
    FORBIDDEN = "forbidden", "Forbidden"


class Policy(models.Model):
    """Group -> component: required (the pinned version, or the latest released one) or
    forbidden (the pinned version only, or the whole component). Conflicts between the
    policies of a device's groups: see apps.policies.resolution (forbidden wins)."""

    group = models.ForeignKey(DeviceGroup, on_delete=models.CASCADE, related_name="policies")
    component = models.ForeignKey(
        "components.TrustedComponent", on_delete=models.PROTECT, related_name="policies"
    )
    effect = models.CharField(max_length=10, choices=Effect.choices)
    version = models.ForeignKey(
        "components.ComponentVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="policies",
        help_text="pinned version; empty: latest released (required) or every version (forbidden)",
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["group", "component"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["group", "component"], name="one_policy_per_group_component"),
            models.CheckConstraint(
                condition=Q(effect__in=["required", "forbidden"]), name="policy_effect_valid"
            ),
        ]

    def __str__(self):
        what = self.version.version_label if self.version_id else (
            "latest released" if self.effect == Effect.REQUIRED else "every version"
        )
        return f"{self.group}: {self.component} {self.effect} ({what})"


class DeviceOverride(models.Model):
    """For one device and one component, replaces what its groups' policies say."""

    class OverrideEffect(models.TextChoices):
        REQUIRED = "required", "Required"
        FORBIDDEN = "forbidden", "Forbidden"
        EXEMPT = "exempt", "Exempt from group policies"

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="policy_overrides")
    component = models.ForeignKey(
        "components.TrustedComponent", on_delete=models.PROTECT, related_name="device_overrides"
    )
    effect = models.CharField(max_length=10, choices=OverrideEffect.choices)
    version = models.ForeignKey(
        "components.ComponentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["device", "component"]
        constraints = [
            models.UniqueConstraint(fields=["device", "component"], name="one_override_per_device_component"),
            models.CheckConstraint(
                condition=Q(effect__in=["required", "forbidden", "exempt"]), name="override_effect_valid"
            ),
        ]

    def __str__(self):
        return f"{self.device}: {self.component} {self.effect}"


class CompromiseResponse(models.Model):
    """A version marked compromised and the fan-out of its removal. Progress is counted from
    the queued actions it created (never kept as counters)."""

    version = models.OneToOneField(
        "components.ComponentVersion", on_delete=models.PROTECT, related_name="compromise_response"
    )
    reason = models.TextField()
    marked_at = models.DateTimeField(auto_now_add=True, db_index=True)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    marked_by_name = models.CharField(max_length=150, blank=True)
    # What holders get instead, chosen by the security officer when marking it: a named
    # version, or nothing (remove only). Automatic choices never give a holder a version
    # older than the compromised one except this one (apps.policies.decision, floors).
    replacement = models.ForeignKey(
        "components.ComponentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="version each holder gets instead; empty: remove only",
    )
    # How many devices were known to hold it when it was marked: a fact, not a counter.
    holders_at_mark = models.PositiveIntegerField(default=0)
    # Fan-out bookkeeping: last InstalledComponent id processed, last batch time, end.
    fanout_cursor = models.PositiveBigIntegerField(default=0)
    fanout_heartbeat_at = models.DateTimeField(null=True, blank=True)
    fanout_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-marked_at"]

    def __str__(self):
        return f"compromise of {self.version}"


class QueuedAction(models.Model):
    """An install, update or removal queued for one device, delivered at its next
    RequestPolicyCheck (the next QueryResponse it sends) and settled by its Success/Error."""

    class Kind(models.TextChoices):
        INSTALL = "install", "Install"
        UPDATE = "update", "Update"
        REMOVE = "remove", "Remove"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        DELIVERED = "delivered", "Delivered"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATES = (State.QUEUED, State.DELIVERED)

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="queued_actions")
    component = models.ForeignKey(
        "components.TrustedComponent", on_delete=models.PROTECT, related_name="queued_actions"
    )
    # install/update: the version to hold (empty: latest released); remove: only this version
    # (empty: whatever version it holds).
    version = models.ForeignKey(
        "components.ComponentVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # Failed deliveries counted toward settings.TEEP_MAX_DELIVERY_FAILURES (temporary errors
    # reported as such by the agent do not count).
    attempts = models.PositiveSmallIntegerField(default=0)
    # The DeliveryItem of the Update that carried it last.
    delivery = models.ForeignKey(
        "devices.DeliveryItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="queued_actions"
    )
    reason = models.CharField(max_length=300, blank=True, help_text="why it was queued, failed or settled")
    compromise = models.ForeignKey(
        CompromiseResponse, null=True, blank=True, on_delete=models.PROTECT, related_name="actions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["device", "component", "kind"],
                condition=Q(state__in=["queued", "delivered"]),
                name="one_open_action_per_device_component",
            ),
            # A compromise response removes a version from a device (and installs its
            # replacement) once, however often its fan-out runs.
            models.UniqueConstraint(
                fields=["device", "compromise", "kind"],
                condition=Q(compromise__isnull=False),
                name="one_action_per_device_compromise_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["install", "update", "remove"]), name="queued_action_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["queued", "delivered", "succeeded", "failed", "cancelled"]),
                name="queued_action_state_valid",
            ),
        ]
        indexes = [
            # What is open for a device at its contact.
            models.Index(fields=["device"], condition=Q(state__in=["queued", "delivered"]),
                         name="queued_action_open_by_device"),
            models.Index(fields=["compromise", "state"], name="queued_action_compromise"),
            models.Index(fields=["state", "delivered_at"], name="queued_action_state_time"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.version or self.component} on {self.device} ({self.state})"


class PolicyEpoch(models.Model):
    """One row: a number that grows whenever something changes that can change what is due
    for devices in general (policies, groups and their rules and tags, overrides, the
    catalogue, compromise responses, a device's tags or attributes). apps/policies/epoch.py
    bumps it in the transaction of the change; the policy check's fast path and the
    per-process policy world (apps/policies/world.py) compare against it."""

    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "policy epoch"

    def __str__(self):
        return f"policy epoch {self.value}"
