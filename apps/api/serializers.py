"""JSON shapes of the management API. Read serializers mirror the models; write serializers
only parse input for one service call."""

from django.conf import settings
from rest_framework import serializers

from apps.audit.models import AuditEvent
from apps.components.forms import decode_binary_or_hex
from apps.components.models import ComponentVersion, TCSigner, TrustedComponent
from apps.components.services import ENVELOPE_MAX_BYTES
from apps.devices.models import Device

MAX_SEQUENCE_NUMBER = (1 << 63) - 1


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
            "signers",
            "created_at",
        ]
        read_only_fields = fields


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
