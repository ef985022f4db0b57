"""JSON shapes of the management API. Read serializers mirror the models; write serializers
only parse input for one service call."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.audit.models import AuditEvent
from apps.components import identifiers
from apps.components.forms import decode_binary_or_hex
from apps.components.models import ComponentVersion, TCSigner, TrustedComponent
from apps.components.services import ENVELOPE_MAX_BYTES
from apps.devices.models import Device, Tag
from apps.policies.models import (
    AttributeRule,
    CompromiseResponse,
    DeviceGroup,
    Policy,
    QueuedAction,
)

MAX_SEQUENCE_NUMBER = (1 << 63) - 1  # also the largest id (bigint)


# --- devices -------------------------------------------------------------------------------


class DeviceSerializer(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Device
        fields = [
            "id",
            "kid",
            "name",
            "ueid",
            "tags",
            "state",
            "registration",
            "accepts_kidless",
            "numbering",
            "signing_alg",
            "selected_version",
            "first_contact_at",
            "last_contact_at",
            "last_error_code",
            "last_error_name",
            "last_error_msg",
            "registered_at",
        ]
        read_only_fields = fields


class DeviceRegisterSerializer(serializers.Serializer):
    public_key = serializers.CharField(
        max_length=64 * 1024,
        trim_whitespace=True,
        help_text="The agent's signing key: PEM text, or its COSE_Key as hex.",
    )
    name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=50,
    )
    accepts_kidless = serializers.BooleanField(
        required=False, default=False,
        help_text="Its agent signs without a kid: messages without one are tried with this key "
                  "(bounded by TEEP_KIDLESS_MAX_CANDIDATES).",
    )


# --- catalogue -----------------------------------------------------------------------------


class TrustedComponentSerializer(serializers.ModelSerializer):
    component_id_text = serializers.CharField(read_only=True)
    manifest_component_id_text = serializers.CharField(read_only=True)
    signers = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = TrustedComponent
        fields = [
            "id",
            "name",
            "vendor",
            "description",
            "component_id",
            "component_id_text",
            "manifest_component_id",
            "manifest_component_id_text",
            "suit_vendor_id",
            "suit_class_id",
            "signers",
            "created_at",
        ]
        read_only_fields = fields


class TrustedComponentCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    component_id = serializers.CharField(
        max_length=2000,
        help_text="SUIT component identifier: ['TEEP-Device', 'SecureFS', h'8d82...', 'ta'] "
        "or the hex of its CBOR array",
    )
    manifest_component_id = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="empty: the component id with its last element replaced by 'suit'",
    )
    vendor = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_name(self, value):
        if TrustedComponent.objects.filter(name=value).exists():
            raise serializers.ValidationError("a Trusted Component with this name exists")
        return value

    def validate_component_id(self, value):
        return _component_id(value)

    def validate_manifest_component_id(self, value):
        return _component_id(value) if value.strip() else None


def _component_id(text: str) -> list[bytes]:
    try:
        return identifiers.parse(text)
    except identifiers.ComponentIdError as exc:
        raise serializers.ValidationError(str(exc)) from None


class ComponentVersionSerializer(serializers.ModelSerializer):
    component_name = serializers.CharField(source="component.name", read_only=True)
    signed_by = serializers.CharField(read_only=True)

    class Meta:
        model = ComponentVersion
        fields = [
            "id",
            "component",
            "component_name",
            "version_label",
            "sequence_number",
            "state",
            "state_changed_reason",
            "delivery",
            "binary_filename",
            "binary_size",
            "binary_sha256",
            "payload_uri",
            "envelope_sha256",
            "signed_by",
            "signer_kid",
            "released_at",
            "created_at",
        ]
        read_only_fields = fields


class _UploadSerializer(serializers.Serializer):
    component = serializers.PrimaryKeyRelatedField(queryset=TrustedComponent.objects.all())
    version_label = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    release = serializers.BooleanField(required=False, default=False, help_text="release it now")


class BinaryUploadSerializer(_UploadSerializer):
    file = serializers.FileField(
        help_text="The TA binary; the TAM builds and signs its SUIT envelope."
    )
    sequence_number = serializers.IntegerField(min_value=0, max_value=MAX_SEQUENCE_NUMBER)
    delivery = serializers.ChoiceField(choices=ComponentVersion.Delivery.choices, default="uri")

    def validate_file(self, upload):
        limit = settings.TA_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise serializers.ValidationError(
                f"The binary is larger than the limit of {limit} bytes."
            )
        return upload


class EnvelopeUploadSerializer(_UploadSerializer):
    file = serializers.FileField(
        help_text="A SUIT envelope signed by a TC signer (CBOR, or its hex)."
    )
    signer = serializers.PrimaryKeyRelatedField(
        queryset=TCSigner.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Empty: any signer allowed for the component.",
    )

    def validate_file(self, upload):
        if upload.size > 2 * ENVELOPE_MAX_BYTES + 4:
            raise serializers.ValidationError("The envelope is too large.")
        return upload

    def validate(self, data):
        data["envelope_bytes"] = decode_binary_or_hex(data.pop("file").read())
        return data


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class RequiredReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


# --- policies ------------------------------------------------------------------------------


class AttributeRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AttributeRule
        fields = ["attribute", "operator", "value"]


class TagNamesField(serializers.ListField):
    """Tags by name: read from the relation, written as a list of slugs."""

    child = serializers.SlugField(max_length=64)

    def to_representation(self, tags):
        return [tag.name for tag in tags.all()]


class DeviceGroupSerializer(serializers.ModelSerializer):
    """A group with its tags (by name, created when new) and attribute rules. Writing `rules`
    replaces every rule of the group."""

    tags = TagNamesField(
        required=False,
        max_length=100,
        help_text="devices with any of these tags (names; created when new)",
    )
    rules = AttributeRuleSerializer(many=True, required=False, max_length=50)
    policies = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = DeviceGroup
        fields = [
            "id",
            "name",
            "description",
            "all_devices",
            "require_attestation",
            "tags",
            "rules",
            "policies",
            "created_at",
        ]
        read_only_fields = ["id", "policies", "created_at"]

    def save(self, **kwargs):
        tags = self.validated_data.pop("tags", None)
        rules = self.validated_data.pop("rules", None)
        group = super().save(**kwargs)
        if tags is not None:
            group.tags.set([Tag.objects.get_or_create(name=name)[0] for name in tags])
        if rules is not None:
            group.rules.all().delete()
            AttributeRule.objects.bulk_create(AttributeRule(group=group, **rule) for rule in rules)
        return group


class PolicySerializer(serializers.ModelSerializer):
    group_name = serializers.CharField(source="group.name", read_only=True)
    component_name = serializers.CharField(source="component.name", read_only=True)
    version_label = serializers.CharField(
        source="version.version_label", read_only=True, default=None
    )

    class Meta:
        model = Policy
        fields = [
            "id",
            "group",
            "group_name",
            "component",
            "component_name",
            "effect",
            "version",
            "version_label",
            "note",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, data):
        component = data.get("component", getattr(self.instance, "component", None))
        version = data.get("version", getattr(self.instance, "version", None))
        if version is not None and component is not None and version.component_id != component.pk:
            raise serializers.ValidationError(
                {"version": f"{version} is not a version of {component}."}
            )
        return data


class QueuedActionSerializer(serializers.ModelSerializer):
    device_name = serializers.CharField(source="device.__str__", read_only=True)
    component_name = serializers.CharField(source="component.name", read_only=True)
    version_label = serializers.CharField(
        source="version.version_label", read_only=True, default=None
    )

    class Meta:
        model = QueuedAction
        fields = [
            "id",
            "device",
            "device_name",
            "component",
            "component_name",
            "version",
            "version_label",
            "kind",
            "state",
            "attempts",
            "reason",
            "compromise",
            "delivery",
            "created_at",
            "delivered_at",
            "settled_at",
        ]
        read_only_fields = fields


class QueueActionSerializer(serializers.Serializer):
    """Queue an install, update or removal for one device or every device of one group."""

    kind = serializers.ChoiceField(choices=QueuedAction.Kind.choices)
    component = serializers.PrimaryKeyRelatedField(queryset=TrustedComponent.objects.all())
    version = serializers.PrimaryKeyRelatedField(
        queryset=ComponentVersion.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="install/update: empty = latest released; remove: empty = whatever it holds",
    )
    device = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.all(), required=False, allow_null=True, default=None
    )
    group = serializers.PrimaryKeyRelatedField(
        queryset=DeviceGroup.objects.all(), required=False, allow_null=True, default=None
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, data):
        if (data["device"] is None) == (data["group"] is None):
            raise serializers.ValidationError("Give one device or one group.")
        return data


class QueuedCountSerializer(serializers.Serializer):
    queued = serializers.IntegerField(
        help_text="actions queued (a device that has the same one open keeps it)"
    )


class CancelActionsSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_SEQUENCE_NUMBER),
        min_length=1,
        max_length=10000,
    )


class CancelledCountSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField(
        help_text="actions cancelled (delivered or settled ones are not)"
    )


class CompromiseProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="devices with a removal queued")
    not_contacted = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="contacted: removal due or awaiting the answer")
    removed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    delivered_not_confirmed = serializers.IntegerField(
        help_text="removal delivered in an Update, neither confirmed nor seen undone since"
    )
    still_held = serializers.IntegerField(help_text="devices whose last report still lists the version")
    replacement = serializers.DictField(help_text="the replacement installs: version, total, installed, failed")
    fanout_finished = serializers.BooleanField()


class CompromiseResponseSerializer(serializers.ModelSerializer):
    version_label = serializers.CharField(source="version.version_label", read_only=True)
    component = serializers.IntegerField(source="version.component_id", read_only=True)
    component_name = serializers.CharField(source="version.component.name", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = CompromiseResponse
        fields = [
            "id",
            "version",
            "version_label",
            "component",
            "component_name",
            "reason",
            "marked_at",
            "marked_by_name",
            "holders_at_mark",
            "replacement",
            "fanout_finished_at",
            "progress",
        ]
        read_only_fields = fields

    @extend_schema_field(CompromiseProgressSerializer)
    def get_progress(self, response):
        from apps.policies.services import compromise_progress

        return compromise_progress(response)


class MarkCompromisedSerializer(serializers.Serializer):
    version = serializers.PrimaryKeyRelatedField(queryset=ComponentVersion.objects.all())
    reason = serializers.CharField(
        max_length=2000, help_text="recorded in the audit trail (e.g. the advisory)"
    )
    replacement = serializers.PrimaryKeyRelatedField(
        queryset=ComponentVersion.objects.all(), required=False, allow_null=True, default=None,
        help_text="the released version each holder gets instead (see the preview's choices); "
                  "absent or null: remove only",
    )


class CompromisePreviewQuerySerializer(serializers.Serializer):
    version = serializers.PrimaryKeyRelatedField(queryset=ComponentVersion.objects.all())


class ReplacementChoiceSerializer(serializers.Serializer):
    version = serializers.IntegerField(allow_null=True, help_text="null: remove only")
    label = serializers.CharField()
    sequence_number = serializers.IntegerField(allow_null=True)
    description = serializers.CharField()
    failed_on = serializers.IntegerField(help_text="holders on which this version failed before")
    blocked_on = serializers.IntegerField(
        help_text="holders on which it failed TEEP_MAX_DELIVERY_FAILURES times: not offered to them again"
    )
    warning = serializers.CharField(allow_blank=True)


class PolicyNoteSerializer(serializers.Serializer):
    policy = serializers.IntegerField()
    group = serializers.CharField()
    note = serializers.CharField(help_text="what the policy does once the version is compromised")


class CompromisePreviewSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    holders = serializers.IntegerField(help_text="devices known to hold the version")
    already = serializers.BooleanField(help_text="the version is already marked compromised")
    choices = ReplacementChoiceSerializer(
        many=True, help_text="what each holder can get instead; the first (remove only) is the default"
    )
    policies = PolicyNoteSerializer(many=True, help_text="policies requiring the component")


# --- audit ---------------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "kind",
            "action",
            "outcome",
            "actor",
            "actor_name",
            "device_kid",
            "object_type",
            "object_id",
            "object_repr",
            "reason",
            "detail",
            "source_ip",
        ]
        read_only_fields = fields


class ErrorSerializer(serializers.Serializer):
    """A refused request: what was wrong, and the input field concerned when there is one."""

    detail = serializers.CharField()
    field = serializers.CharField(required=False, allow_null=True)
