"""Personalization data (TEEP 4.4.3 Scenario 3, Appendix E Example 3) for one device each, and
the device key it is encrypted to on delivery.

Plaintext is never stored: `ciphertext` is AES-256-GCM under a data encryption key (at_rest.py)
with associated data naming the device, the component and the sequence number, so a row copied
elsewhere does not decrypt. State changes go through apps.personalization.services.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class DeviceEncryptionKey(models.Model):
    """A device's P-256 key-agreement key (SUIT firmware encryption 5.2, ES-DH).

    Kept here rather than on devices.Device: only personalization needs it. It is not the key
    that signs the agent's TEEP messages (one key, one purpose)."""

    device = models.OneToOneField(
        "devices.Device", on_delete=models.CASCADE, related_name="encryption_key"
    )
    # COSE_Key (deterministic CBOR) of the public key.
    cose_key = models.BinaryField()
    kid = models.CharField(
        "key id", max_length=64, db_index=True, help_text="RFC 9679 thumbprint, hex"
    )
    registered_at = models.DateTimeField(default=timezone.now)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-registered_at"]
        verbose_name = "device encryption key"

    def __str__(self):
        return f"{self.device} encryption key {self.kid[:16]}…"


class PersonalizationData(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending delivery"
        DELIVERED = "delivered", "Delivered, awaiting the agent's answer"
        INSTALLED = "installed", "Installed"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded by newer data"

    device = models.ForeignKey(
        "devices.Device", on_delete=models.CASCADE, related_name="personalization_data"
    )
    # The data component, e.g. ['TEEP-Device', 'SecureFS', 'config.json'] (TEEP Appendix E).
    component = models.ForeignKey(
        "components.TrustedComponent", on_delete=models.PROTECT, related_name="personalization_data"
    )
    # The Trusted Component the data belongs to: a SUIT dependency of the delivery envelope.
    depends_on = models.ForeignKey(
        "components.TrustedComponent",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # SUIT manifest-sequence-number of the delivery envelope: grows per device and component.
    sequence_number = models.PositiveBigIntegerField()
    ciphertext = models.BinaryField(editable=False)
    nonce = models.BinaryField(editable=False)
    key_id = models.CharField("at-rest key id", max_length=16, editable=False)
    # The same values the manifest carries in clear (image-digest, image-size; Example 3).
    plaintext_sha256 = models.CharField("SHA-256", max_length=64)
    plaintext_size = models.PositiveIntegerField("size")
    state = models.CharField(
        max_length=20, choices=State.choices, default=State.PENDING, db_index=True
    )
    state_reason = models.CharField(max_length=300, blank=True)
    # devices.DeliveryItem that carried it (a plain id: the TAM links the two).
    delivery_item_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "personalization data"
        verbose_name_plural = "personalization data"
        constraints = [
            models.UniqueConstraint(
                fields=["device", "component", "sequence_number"],
                name="personalization_sequence_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    state__in=["pending", "delivered", "installed", "failed", "superseded"]
                ),
                name="personalization_state_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["device", "state"], name="personalization_device_state"),
        ]

    def __str__(self):
        return f"{self.component} for {self.device} (#{self.sequence_number})"
