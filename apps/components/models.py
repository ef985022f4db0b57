"""The catalogue: Trusted Components, their versions (each one SUIT envelope) and TC Signers.

State changes go through apps.components.services; these classes hold data, invariants the
database can enforce, and small read-only helpers.
"""

from django.conf import settings
from django.db import models

from apps.components import identifiers


class TCSigner(models.Model):
    """A party other than the TAM whose SUIT manifests the TAM accepts (TEEP architecture 2:
    "Trusted Component Signer"), for the components it is allowed to sign."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "TC signer"

    def __str__(self):
        return self.name


class SignerKey(models.Model):
    signer = models.ForeignKey(TCSigner, on_delete=models.CASCADE, related_name="keys")
    # RFC 9679 COSE Key Thumbprint (SHA-256), hex: the kid TEEP uses for every key.
    kid = models.CharField(max_length=64, unique=True)
    cose_key = models.BinaryField()
    public_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["signer", "created_at"]

    def __str__(self):
        return f"{self.signer} {self.kid[:16]}"


class TrustedComponent(models.Model):
    name = models.CharField(max_length=200, unique=True)
    vendor = models.CharField(max_length=200, blank=True)
    # SUIT_Component_Identifier as the agent reports it: hex of its deterministic CBOR
    # (apps.teep.wire.component_ids.component_id_key; readable forms in identifiers.py).
    component_id = models.CharField(max_length=512, unique=True)
    # The manifest's own id, used to unlink it (SUIT manifest 8.4.4; TEEP Appendix E); what
    # agents list in unneeded-manifest-list. Same encoding.
    manifest_component_id = models.CharField(max_length=512, db_index=True)
    # SUIT manifest 8.4.8.3-4: the vendor-identifier / class-identifier parameters that the
    # manifests the TAM builds check with condition-vendor-/class-identifier. Blank in a form
    # means "the default" (identifiers.default_vendor_id / default_class_id), stored when the
    # component is created so that renaming it or moving the TAM never changes them.
    suit_vendor_id = models.UUIDField(
        "SUIT vendor id",
        blank=True,
        help_text="UUID in suit-parameter-vendor-identifier. Empty: UUID5(DNS, TAM_VENDOR_DOMAIN).",
    )
    suit_class_id = models.UUIDField(
        "SUIT class id",
        blank=True,
        help_text="UUID in suit-parameter-class-identifier. Empty: UUID5(vendor id, name).",
    )
    description = models.TextField(blank=True)
    signers = models.ManyToManyField(
        TCSigner, blank=True, related_name="components", help_text="TC signers allowed to sign it"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def component_id_elements(self) -> list[bytes]:
        return identifiers.decode(self.component_id)

    @property
    def component_id_text(self) -> str:
        return identifiers.readable(self.component_id_elements) if self.component_id else ""

    @property
    def manifest_component_id_elements(self) -> list[bytes]:
        return identifiers.decode(self.manifest_component_id)

    @property
    def manifest_component_id_text(self) -> str:
        if not self.manifest_component_id:
            return ""
        return identifiers.readable(self.manifest_component_id_elements)


class ComponentVersionQuerySet(models.QuerySet):
    def servable(self):
        """Versions whose payload devices may fetch: released, delivered by URI, with a binary."""
        return self.filter(
            state=ComponentVersion.State.RELEASED,
            delivery=ComponentVersion.Delivery.URI,
        ).exclude(binary="")


class ComponentVersion(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        RELEASED = "released", "Released"
        COMPROMISED = "compromised", "Compromised"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Delivery(models.TextChoices):
        URI = "uri", "Fetched from a URI"
        INTEGRATED = "integrated", "Integrated in the envelope"

    component = models.ForeignKey(
        TrustedComponent, on_delete=models.PROTECT, related_name="versions"
    )
    version_label = models.CharField(max_length=100)
    # SUIT manifest-sequence-number (manifest 8.4.2): only grows (DESIGN.md).
    sequence_number = models.PositiveBigIntegerField()
    # The TA binary as uploaded; empty for signed envelopes whose payload lives elsewhere.
    binary = models.FileField(upload_to="components/", max_length=300, blank=True)
    binary_filename = models.CharField(max_length=200, blank=True)
    # Size and SHA-256 of the payload: of the uploaded file, or the manifest's image-size and
    # image-digest for a signed envelope.
    binary_size = models.PositiveBigIntegerField(null=True, blank=True)
    binary_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    payload_uri = models.TextField(blank=True)
    # The untagged SUIT_Envelope, as TEEP manifest-list carries it.
    envelope = models.BinaryField()
    envelope_sha256 = models.CharField(max_length=64, db_index=True)
    delivery = models.CharField(max_length=20, choices=Delivery.choices)
    # None: built and signed by the TAM.
    signer = models.ForeignKey(
        TCSigner, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    signer_kid = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    state_changed_reason = models.TextField(blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ComponentVersionQuerySet.as_manager()

    class Meta:
        ordering = ["component", "-sequence_number"]
        permissions = [("mark_compromised", "Can mark a component version compromised")]
        constraints = [
            models.UniqueConstraint(
                fields=["component", "sequence_number"], name="component_version_sequence_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=["draft", "released", "compromised", "withdrawn"]),
                name="component_version_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(delivery__in=["uri", "integrated"]),
                name="component_version_delivery_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="released") | models.Q(released_at__isnull=False),
                name="component_version_released_has_time",
            ),
        ]
        indexes = [
            models.Index(
                fields=["component", "state", "-sequence_number"], name="version_component_state"
            ),
            models.Index(fields=["state", "-created_at"], name="version_state_created"),
        ]

    def __str__(self):
        return f"{self.component} {self.version_label} (#{self.sequence_number})"

    @property
    def signed_by(self) -> str:
        return str(self.signer) if self.signer_id else "TAM"

    @property
    def envelope_filename(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.component.name)
        return f"{safe}-{self.sequence_number}.suit"
