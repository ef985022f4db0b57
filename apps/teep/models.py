"""Used TEEP tokens and outstanding attestation challenges (TEEP 4.2, 7.1; DESIGN.md
"Freshness and sessions"). QueryRequest and Update tokens are minted (apps/teep/tokens.py):
a row exists only once one was consumed, so that it cannot be used twice."""

from django.db import models


class TeepTokenQuerySet(models.QuerySet):
    def outstanding(self, now):
        return self.filter(consumed_at__isnull=True, expires_at__gt=now)


class TeepToken(models.Model):
    class Kind(models.TextChoices):
        QUERY_REQUEST = "query-request", "QueryRequest token"
        CHALLENGE = "challenge", "Attestation challenge"
        UPDATE = "update", "Update token"

    value = models.BinaryField(max_length=64, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Unknown until a validly signed answer arrives: an empty POST does not say who it is.
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    numbering = models.CharField(max_length=20)
    # What the QueryRequest asked for (data-item-requested bits), to check the answer (7.1.1).
    data_item_requested = models.PositiveIntegerField(default=0)
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    objects = TeepTokenQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["device", "consumed_at"], name="token_device_open")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["query-request", "challenge", "update"]), name="token_kind_valid"
            )
        ]

    def __str__(self):
        return f"{self.kind} {bytes(self.value)[:4].hex()}…"
