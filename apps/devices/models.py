"""Devices (TEEP Agents) as the TAM knows them, and what they hold.

A device is identified by its agent key id: the RFC 9679 COSE Key thumbprint (SHA-256) of
the key that signs its TEEP messages (TEEP 5, DESIGN.md "Roles and words").
"""

from django.conf import settings
from django.db import models


class Tag(models.Model):
    name = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class DeviceQuerySet(models.QuerySet):
    def holding(self, version):
        return self.filter(installed_components__version=version)


class Device(models.Model):
    class State(models.TextChoices):
        REGISTERED = "registered", "Registered, never seen"
        ACTIVE = "active", "Active"
        UNTRUSTED = "untrusted", "Untrusted (attestation failed)"
        RETIRED = "retired", "Retired"

    class Registration(models.TextChoices):
        MANUAL = "manual", "Pre-provisioned key"
        ATTESTED = "attested", "Trusted by attestation"

    kid = models.CharField("agent key id", max_length=64, unique=True, help_text="RFC 9679 thumbprint, hex")
    public_key = models.BinaryField(help_text="COSE_Key of the agent's signing key")
    ueid = models.CharField("UEID", max_length=66, blank=True, db_index=True)
    name = models.CharField(max_length=150, blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="devices")
    state = models.CharField(max_length=20, choices=State.choices, default=State.REGISTERED, db_index=True)
    registration = models.CharField(max_length=20, choices=Registration.choices, default=Registration.MANUAL)
    # Agents from older drafts may sign without a kid: the TAM tries this device's key on such
    # messages (apps/tam/identify.py, bounded by TEEP_KIDLESS_MAX_CANDIDATES).
    accepts_kidless = models.BooleanField(
        "kid-less agent", default=False,
        help_text="Its agent signs without a kid: messages without one are tried with this device's key.",
    )
    # The TEEP wire numbering this agent speaks (DESIGN.md "Wire numbering"); set by the
    # endpoint it uses, never guessed from bytes.
    numbering = models.CharField(max_length=20, default="draft-26")
    # COSE algorithm the agent signs with; the TAM answers with the same suite (TEEP 8.1).
    signing_alg = models.IntegerField(null=True, blank=True)
    selected_version = models.PositiveIntegerField(null=True, blank=True)
    first_contact_at = models.DateTimeField(null=True, blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Reported by the agent in its last QueryResponse (TEEP 4.3).
    requested_components = models.JSONField(default=list, blank=True)
    unneeded_manifests = models.JSONField(default=list, blank=True)
    ext_list = models.JSONField(default=list, blank=True)
    # Attributes policy groups select on (apps.policies AttributeRule), as text: the claims of
    # the device's last affirming attestation (EAT hwmodel, oemid, hwversion, ...; byte
    # strings as hex) and any an operator recorded.
    attributes = models.JSONField(default=dict, blank=True)
    # How recent the recorded state is: the issue time of the QueryRequest whose answer it came
    # from, or when a Success/Error last changed it. A QueryResponse to an older QueryRequest
    # (delayed or reordered on the way) is stale and not recorded.
    state_as_of = models.DateTimeField(null=True, blank=True)
    # The fast path of a policy check (apps/tam/engine.py): the digest of the state the device
    # last reported and the policy epoch (apps/policies/epoch.py) at which the TAM found
    # nothing due for it. Both unchanged and nothing in flight: nothing is due now either.
    reconciled_digest = models.CharField(max_length=64, blank=True, editable=False)
    reconciled_epoch = models.BigIntegerField(null=True, blank=True, editable=False)
    # The outcome (suit-report-result true/false) of the newest SUIT report a QueryResponse
    # brought for each manifest digest (hex): boot-time reports repeat at every check (TEEP
    # 4.3) and are stored only when their outcome changed, decided without reading them back.
    query_report_outcomes = models.JSONField(default=dict, blank=True, editable=False)
    # After ERR_TEMPORARY_ERROR the TAM sends nothing new until then (TEEP 4.6).
    backoff_until = models.DateTimeField(null=True, blank=True)
    last_error_code = models.PositiveIntegerField(null=True, blank=True)
    last_error_name = models.CharField(max_length=60, blank=True)
    last_error_msg = models.CharField(max_length=200, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Set when a later Update to the device succeeded: the last error no longer describes it.
    error_resolved_at = models.DateTimeField(null=True, blank=True)
    # What the agent said it supports when it refused our offer (Error 4.6).
    agent_cipher_suites = models.JSONField(default=list, blank=True)
    agent_versions = models.JSONField(default=list, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = DeviceQuerySet.as_manager()

    class Meta:
        ordering = ["-last_contact_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["registered", "active", "untrusted", "retired"]),
                name="device_state_valid",
            )
        ]
        indexes = [
            # The few kid-less devices among many (apps/tam/identify.py lists them in pk order).
            models.Index(fields=["id"], condition=models.Q(accepts_kidless=True), name="device_kidless_idx"),
        ]

    def __str__(self):
        if self.name:
            return self.name
        # Unnamed: a short label people can read and tell apart (kid prefix, registration day).
        kid = self.kid or ""
        short = f"{kid[:4]}-{kid[4:8]}" if len(kid) >= 8 else kid
        day = f", registered {self.registered_at:%Y-%m-%d}" if self.registered_at else ""
        return f"agent {short}{day}"


class InstalledComponent(models.Model):
    """One Trusted Component a device holds, from its tc-list or from a settled Update."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="installed_components")
    # Canonical CBOR of the SUIT_Component_Identifier, hex: the key the agent and the TAM share.
    component_key = models.CharField(max_length=512)
    component = models.ForeignKey(
        "components.TrustedComponent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.ForeignKey(
        "components.ComponentVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="installations",
    )
    sequence_number = models.PositiveBigIntegerField(null=True, blank=True)
    image_digest = models.CharField(max_length=128, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "component_key"], name="one_row_per_device_component")
        ]
        # The compromise fan-out walks the holders of one version in id order.
        indexes = [models.Index(fields=["version", "id"], name="installed_version_id")]

    def __str__(self):
        return f"{self.device} holds {self.version or self.component_key}"


class SuitReport(models.Model):
    """A SUIT report an agent sent (QueryResponse, Success or Error), kept readable."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="suit_reports")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    message_type = models.CharField(max_length=20)
    raw = models.BinaryField()
    parsed = models.JSONField(default=dict)
    success = models.BooleanField(null=True)
    summary = models.CharField(max_length=300, blank=True)
    manifest_digest = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"SUIT report {self.received_at:%Y-%m-%d %H:%M} ({self.message_type})"


class DeliveryItem(models.Model):
    """One thing an Update asked a device to do, settled by its Success or Error."""

    class Kind(models.TextChoices):
        INSTALL = "install", "Install or update"
        REMOVE = "remove", "Remove"

    class State(models.TextChoices):
        # Sent in an Update; neither answered nor seen in a later report yet.
        SENT = "sent", "Delivered, not confirmed"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # The token expired without an answer; the next report settles it.
        EXPIRED = "expired", "No answer yet (token expired)"
        # A later report showed it was not applied (Update or its answer lost): offered again.
        LOST = "lost", "Not applied (lost on the way)"

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="deliveries")
    # The Update's token (minted, apps/teep/tokens.py) and when it expires: its Success or
    # Error settles the items that carry it.
    update_token = models.BinaryField(max_length=64, null=True, blank=True, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SENT, db_index=True)
    component_key = models.CharField(max_length=512)
    manifest_key = models.CharField(max_length=512, blank=True)
    version = models.ForeignKey(
        "components.ComponentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    manifest_digest = models.CharField(max_length=128, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    # A failure the agent called temporary does not count toward the retry limit.
    retryable = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["device", "state"], name="delivery_device_state")]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["install", "remove"]), name="delivery_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(state__in=["sent", "succeeded", "failed", "expired", "lost"]),
                name="delivery_state_valid",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_state_display().lower()})"
