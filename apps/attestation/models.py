"""Remote attestation: endorsements (who may sign Evidence or Attestation Results), reference
values, the appraisal requests the Verifier works on, and the results it came back with.

DESIGN.md "Attestation bootstrap": an agent key is trusted only after a Verifier affirms it;
the last affirming AttestationRecord of a key, within ATTESTATION_VALIDITY_SECONDS, is what
makes it trusted.
"""

from django.conf import settings
from django.db import models


class AttestationKey(models.Model):
    """A public key the TAM trusts to sign attestation payloads.

    Endorsement keys (attester keys) sign Evidence the built-in Verifier appraises; Verifier
    keys sign Attestation Results (TEEP 7.1.1.1, Passport model). kid is the RFC 9679
    thumbprint, as in the COSE header of what the key signs.
    """

    class Purpose(models.TextChoices):
        ENDORSEMENT = "endorsement", "Attester key (signs Evidence)"
        VERIFIER = "verifier", "Verifier key (signs Attestation Results)"

    name = models.CharField(max_length=150)
    purpose = models.CharField(max_length=20, choices=Purpose.choices, default=Purpose.ENDORSEMENT)
    kid = models.CharField(
        "key id", max_length=64, unique=True, help_text="RFC 9679 thumbprint, hex"
    )
    public_key = models.BinaryField(help_text="COSE_Key (deterministic CBOR)")
    public_key_pem = models.TextField(blank=True)
    # When set, the key is accepted only for Evidence carrying this UEID (hex).
    ueid = models.CharField("UEID", max_length=66, blank=True, db_index=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(purpose__in=["endorsement", "verifier"]),
                name="attestation_key_purpose_valid",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.kid[:16]}…)"

    def teep_key(self):
        from apps.teep.wire.keys import TeepKey

        return TeepKey.from_cose_key(bytes(self.public_key))


class ReferenceValue(models.Model):
    """What a claim must be (RFC 9334 reference values), for the built-in Verifier.

    Several active rows for the same claim (and measurement name, and scope) are alternatives:
    the evidence must match one of them. Byte-string claims compare as lower-case hex; hwversion
    compares its version text; a measurement compares the digest (hex) of the measured
    component named `measurement_name`.
    """

    class Claim(models.TextChoices):
        HWMODEL = "hwmodel", "hwmodel (259)"
        HWVERSION = "hwversion", "hwversion (260)"
        OEMID = "oemid", "oemid (258)"
        MEASUREMENT = "measurement", "measurement (273)"

    name = models.CharField(max_length=150)
    claim = models.CharField(max_length=20, choices=Claim.choices)
    measurement_name = models.CharField(max_length=200, blank=True)
    expected = models.CharField(
        max_length=256, help_text="hex for byte strings, text for hwversion"
    )
    # Applies only to Evidence whose hwmodel (hex) is this; blank = every device.
    scope_hwmodel = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["claim", "measurement_name", "name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(claim__in=["hwmodel", "hwversion", "oemid", "measurement"]),
                name="reference_value_claim_valid",
            ),
            models.UniqueConstraint(
                fields=["claim", "measurement_name", "expected", "scope_hwmodel"],
                name="one_reference_value_per_expectation",
            ),
        ]

    def __str__(self):
        which = f"{self.claim}:{self.measurement_name}" if self.measurement_name else self.claim
        return f"{self.name} ({which} = {self.expected[:24]})"


class UsedChallenge(models.Model):
    """Challenges an appraisal has consumed: a second use is a replay (TEEP 9, nonce freshness)."""

    challenge_hash = models.CharField(
        max_length=64, unique=True, help_text="SHA-256 of the challenge, hex"
    )
    agent_kid = models.CharField(max_length=64, blank=True)
    used_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self):
        return f"challenge {self.challenge_hash[:16]}… used {self.used_at:%Y-%m-%d %H:%M}"


class AttestationRequest(models.Model):
    """Evidence waiting for, or done with, appraisal by the configured Verifier (a Celery task)."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the Verifier"
        DONE = "done", "Appraised"
        UNAVAILABLE = "unavailable", "Verifier unavailable (gave up)"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    device = models.ForeignKey(
        "devices.Device",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attestation_requests",
    )
    agent_kid = models.CharField(max_length=64, db_index=True)
    agent_public_key = models.BinaryField(
        help_text="COSE_Key of the key that signed the QueryResponse"
    )
    evidence = models.BinaryField()
    evidence_digest = models.CharField(max_length=64)
    media_type = models.CharField(max_length=300)
    # The challenge itself is needed by the Verifier (eat_nonce / Veraison session nonce).
    challenge = models.BinaryField(max_length=512)
    challenge_hash = models.CharField(max_length=64, unique=True)
    challenge_expires_at = models.DateTimeField(null=True, blank=True)
    backend = models.CharField(max_length=20)
    state = models.CharField(
        max_length=20, choices=State.choices, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "done", "unavailable"]),
                name="attestation_request_state_valid",
            )
        ]

    def __str__(self):
        return f"appraisal request {self.pk} for {self.agent_kid[:16]}… ({self.state})"


class AttestationRecordQuerySet(models.QuerySet):
    def for_kid(self, kid_hex: str):
        return self.filter(agent_kid=kid_hex)

    def affirming(self):
        return self.filter(status=AttestationRecord.Status.AFFIRMING)


class AttestationRecord(models.Model):
    """One appraisal outcome: the Attestation Result the TAM acted on (append-only)."""

    class Status(models.TextChoices):
        AFFIRMING = "affirming", "Affirming"
        WARNING = "warning", "Warning"
        CONTRAINDICATED = "contraindicated", "Contraindicated"
        NONE = "none", "No claim"
        ERROR = "error", "Verifier error"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    device = models.ForeignKey(
        "devices.Device",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attestation_records",
    )
    agent_kid = models.CharField(max_length=64, db_index=True)
    request = models.OneToOneField(
        AttestationRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="record"
    )
    backend = models.CharField(max_length=20, db_index=True)
    # "evidence" (Background Check model) or "attestation-result" (Passport model).
    model = models.CharField(max_length=20, default="evidence")
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    claims = models.JSONField(default=dict, blank=True)
    reasons = models.JSONField(default=list, blank=True)
    trust_vector = models.JSONField(default=dict, blank=True)
    challenge_hash = models.CharField(max_length=64, blank=True)
    raw_result = models.BinaryField(blank=True, default=b"")

    objects = AttestationRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["agent_kid", "status", "created_at"], name="attestation_kid_status"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["affirming", "warning", "contraindicated", "none", "error"]
                ),
                name="attestation_record_status_valid",
            )
        ]

    def __str__(self):
        return f"{self.status} for {self.agent_kid[:16]}… at {self.created_at:%Y-%m-%d %H:%M}"
