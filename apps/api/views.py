"""The management API (/api/v1/): thin views that parse, authorize (ActionPermissions), call
one service and render. Domain refusals (CatalogueError, DeviceError, PolicyError) become 400
with the service's message."""

from django.db import transaction
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from apps.api import serializers as s
from apps.api.filters import (
    AuditEventFilter,
    ComponentVersionFilter,
    DeviceFilter,
    QueuedActionFilter,
)
from apps.api.pagination import AuditCursorPagination
from apps.api.permissions import ActionPermissions
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.components.models import ComponentVersion, TCSigner, TrustedComponent
from apps.devices import services as devices
from apps.devices.models import Device, Tag
from apps.policies import services as policies
from apps.policies.models import CompromiseResponse, DeviceGroup, Policy, QueuedAction

DOMAIN_ERRORS = (catalogue.CatalogueError, devices.DeviceError, policies.PolicyError)
REFUSED = OpenApiResponse(s.ErrorSerializer, description="refused: the message says why")


class ManagementApiMixin:
    permission_classes = [ActionPermissions]

    def handle_exception(self, exc):
        if isinstance(exc, DOMAIN_ERRORS):
            return Response(
                {"detail": str(exc), "field": getattr(exc, "field", None)},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return super().handle_exception(exc)


@extend_schema_view(
    list=extend_schema(summary="Devices (TEEP Agents) the TAM knows"),
    retrieve=extend_schema(summary="One device"),
    create=extend_schema(
        summary="Register a pre-provisioned agent key",
        request=s.DeviceRegisterSerializer,
        responses={201: s.DeviceSerializer, 400: REFUSED},
    ),
)
class DeviceViewSet(ManagementApiMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.DeviceSerializer
    filterset_class = DeviceFilter
    search_fields = ["name", "kid", "ueid"]
    ordering_fields = ["last_contact_at", "registered_at", "name"]
    action_permissions = {
        "list": ["devices.view_device"],
        "retrieve": ["devices.view_device"],
        "create": ["devices.add_device"],
        "retire": ["devices.change_device"],
        "unretire": ["devices.change_device"],
    }

    def get_queryset(self):
        return Device.objects.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.only("name"))
        ).order_by("-last_contact_at", "id")

    def create(self, request, *args, **kwargs):
        form = s.DeviceRegisterSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        device = devices.register_agent(
            public_key_bytes=form.validated_data["public_key"].encode(),
            name=form.validated_data["name"],
            tags=form.validated_data["tags"],
            accepts_kidless=form.validated_data["accepts_kidless"],
            actor=request.user,
            request=request,
        )
        return Response(s.DeviceSerializer(device).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Retire a device: its TEEP messages are dropped, its open actions cancelled",
        request=s.RequiredReasonSerializer,
        responses={200: s.DeviceSerializer, 400: REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser])
    def retire(self, request, pk=None):
        form = s.RequiredReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        device = devices.retire_device(
            self.get_object(), actor=request.user, reason=form.validated_data["reason"],
            request=request,
        )
        return Response(s.DeviceSerializer(device).data)

    @extend_schema(
        summary="Bring a retired device back into service",
        request=s.RequiredReasonSerializer,
        responses={200: s.DeviceSerializer, 400: REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser])
    def unretire(self, request, pk=None):
        form = s.RequiredReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        device = devices.unretire_device(
            self.get_object(), actor=request.user, reason=form.validated_data["reason"],
            request=request,
        )
        return Response(s.DeviceSerializer(device).data)


@extend_schema_view(
    list=extend_schema(summary="Trusted Components in the catalogue"),
    retrieve=extend_schema(summary="One Trusted Component"),
    create=extend_schema(
        summary="Add a Trusted Component to the catalogue (its versions are uploaded after)",
        request=s.TrustedComponentCreateSerializer,
        responses={201: s.TrustedComponentSerializer, 400: REFUSED},
    ),
)
class TrustedComponentViewSet(
    ManagementApiMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    serializer_class = s.TrustedComponentSerializer
    search_fields = ["name", "vendor"]
    action_permissions = {
        "list": ["components.view_trustedcomponent"],
        "retrieve": ["components.view_trustedcomponent"],
        "create": ["components.add_trustedcomponent"],
    }

    def create(self, request, *args, **kwargs):
        form = s.TrustedComponentCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        component = catalogue.create_component(
            **form.validated_data, actor=request.user, request=request
        )
        return Response(
            s.TrustedComponentSerializer(component).data, status=status.HTTP_201_CREATED
        )

    def get_queryset(self):
        return TrustedComponent.objects.prefetch_related(
            Prefetch("signers", queryset=TCSigner.objects.only("name"))
        ).order_by("name")


@extend_schema_view(
    list=extend_schema(summary="Component versions (one SUIT envelope each)"),
    retrieve=extend_schema(summary="One component version"),
)
class ComponentVersionViewSet(ManagementApiMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ComponentVersionSerializer
    filterset_class = ComponentVersionFilter
    ordering_fields = ["created_at", "sequence_number"]
    action_permissions = {
        "list": ["components.view_componentversion"],
        "retrieve": ["components.view_componentversion"],
        "upload_binary": ["components.add_componentversion"],
        "upload_envelope": ["components.add_componentversion"],
        "release": ["components.change_componentversion"],
        "withdraw": ["components.change_componentversion"],
    }

    def get_queryset(self):
        return ComponentVersion.objects.select_related("component", "signer").order_by(
            "component__name", "-sequence_number"
        )

    @extend_schema(
        summary="Upload a TA binary: the TAM builds and signs its SUIT envelope",
        request={"multipart/form-data": s.BinaryUploadSerializer},
        responses={201: s.ComponentVersionSerializer, 400: REFUSED},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="binary",
        parser_classes=[MultiPartParser, FormParser],
    )
    def upload_binary(self, request):
        form = s.BinaryUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = catalogue.upload_binary(
            component=data["component"],
            binary_file=data["file"],
            version_label=data["version_label"],
            sequence_number=data["sequence_number"],
            delivery=data["delivery"],
            release=data["release"],
            actor=request.user,
            request=request,
        )
        return Response(s.ComponentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Upload a SUIT envelope signed by a TC signer: the TAM verifies it",
        request={"multipart/form-data": s.EnvelopeUploadSerializer},
        responses={201: s.ComponentVersionSerializer, 400: REFUSED},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="envelope",
        parser_classes=[MultiPartParser, FormParser],
    )
    def upload_envelope(self, request):
        form = s.EnvelopeUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = catalogue.upload_signed_envelope(
            component=data["component"],
            envelope_bytes=data["envelope_bytes"],
            version_label=data["version_label"],
            signer=data["signer"],
            release=data["release"],
            actor=request.user,
            request=request,
        )
        return Response(s.ComponentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Release a draft (it must be newer than every released version)",
        request=s.ReasonSerializer,
        responses={200: s.ComponentVersionSerializer, 400: REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser])
    def release(self, request, pk=None):
        form = s.ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = catalogue.release_version(
            self.get_object(),
            actor=request.user,
            reason=form.validated_data["reason"],
            request=request,
        )
        return Response(s.ComponentVersionSerializer(version).data)

    @extend_schema(
        summary="Withdraw a draft or released version (no longer offered or served)",
        request=s.RequiredReasonSerializer,
        responses={200: s.ComponentVersionSerializer, 400: REFUSED},
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser])
    def withdraw(self, request, pk=None):
        form = s.RequiredReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = catalogue.withdraw_version(
            self.get_object(),
            actor=request.user,
            reason=form.validated_data["reason"],
            request=request,
        )
        return Response(s.ComponentVersionSerializer(version).data)


@extend_schema_view(
    list=extend_schema(summary="The audit trail, newest first (read-only; cursor-paginated)"),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(ManagementApiMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = AuditCursorPagination
    ordering_fields = None  # the cursor fixes the order
    action_permissions = {
        "list": ["audit.view_auditevent"],
        "retrieve": ["audit.view_auditevent"],
    }

    def get_queryset(self):
        return AuditEvent.objects.all()


# --- policies ------------------------------------------------------------------------------


class AuditedModelViewSet(ManagementApiMixin, viewsets.ModelViewSet):
    """CRUD of policy objects, each save with its audit row in the same transaction (the
    admin's AuditedAdmin does the same through policies.services.record_policy_change)."""

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        with transaction.atomic():
            obj = serializer.save(created_by=self.request.user)
            policies.record_policy_change(
                obj, actor=self.request.user, change="add", request=self.request
            )

    def perform_update(self, serializer):
        with transaction.atomic():
            before = {"repr": str(serializer.instance)}
            obj = serializer.save()
            policies.record_policy_change(
                obj, actor=self.request.user, change="change", request=self.request, before=before
            )

    def perform_destroy(self, instance):
        with transaction.atomic():
            policies.record_policy_change(
                instance,
                actor=self.request.user,
                change="delete",
                request=self.request,
                before={"repr": str(instance)},
            )
            instance.delete()


def _crud_permissions(model: str) -> dict[str, list[str]]:
    view, add, change, delete = (
        f"policies.{verb}_{model}" for verb in ("view", "add", "change", "delete")
    )
    return {
        "list": [view],
        "retrieve": [view],
        "create": [add],
        "update": [change],
        "partial_update": [change],
        "destroy": [delete],
    }


@extend_schema_view(
    list=extend_schema(summary="Device groups (by tags and attribute rules)"),
    retrieve=extend_schema(summary="One device group"),
    create=extend_schema(summary="Create a device group"),
    update=extend_schema(summary="Replace a device group (its rules too, when given)"),
    partial_update=extend_schema(summary="Change a device group"),
    destroy=extend_schema(summary="Delete a device group and its policies"),
)
class DeviceGroupViewSet(AuditedModelViewSet):
    serializer_class = s.DeviceGroupSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
    action_permissions = _crud_permissions("devicegroup")

    def get_queryset(self):
        return DeviceGroup.objects.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.only("name")),
            "rules",
            Prefetch("policies", queryset=Policy.objects.only("id", "group_id")),
        ).order_by("name")


@extend_schema_view(
    list=extend_schema(summary="Policies: device group -> component, required or forbidden"),
    retrieve=extend_schema(summary="One policy"),
    create=extend_schema(summary="Create a policy (one per group and component)"),
    update=extend_schema(summary="Replace a policy"),
    partial_update=extend_schema(summary="Change a policy"),
    destroy=extend_schema(summary="Delete a policy"),
)
class PolicyViewSet(AuditedModelViewSet):
    serializer_class = s.PolicySerializer
    filterset_fields = ["group", "component", "effect", "version"]
    ordering_fields = ["created_at", "updated_at"]
    action_permissions = _crud_permissions("policy")

    def get_queryset(self):
        return Policy.objects.select_related("group", "component", "version").order_by(
            "group__name", "component__name"
        )


@extend_schema_view(
    list=extend_schema(summary="Queued installs, updates and removals"),
    retrieve=extend_schema(summary="One queued action"),
    create=extend_schema(
        summary="Queue an install, update or removal for one device or a group's devices",
        request=s.QueueActionSerializer,
        responses={201: s.QueuedCountSerializer, 400: REFUSED},
    ),
)
class QueuedActionViewSet(
    ManagementApiMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet
):
    serializer_class = s.QueuedActionSerializer
    filterset_class = QueuedActionFilter
    ordering_fields = ["created_at", "settled_at"]
    action_permissions = {
        "list": ["policies.view_queuedaction"],
        "retrieve": ["policies.view_queuedaction"],
        "create": ["policies.add_queuedaction"],
        "cancel": ["policies.change_queuedaction"],
    }

    def get_queryset(self):
        return QueuedAction.objects.select_related("device", "component", "version").order_by(
            "-created_at", "-id"
        )

    def create(self, request, *args, **kwargs):
        form = s.QueueActionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        queued = policies.queue_action(
            actor=request.user,
            component=data["component"],
            kind=data["kind"],
            version=data["version"],
            device=data["device"],
            group=data["group"],
            reason=data["reason"],
            request=request,
        )
        return Response({"queued": queued}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel queued actions (those already delivered or settled are left alone)",
        request=s.CancelActionsSerializer,
        responses={200: s.CancelledCountSerializer, 400: REFUSED},
    )
    @action(detail=False, methods=["post"], parser_classes=[JSONParser])
    def cancel(self, request):
        form = s.CancelActionsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        cancelled = policies.cancel_actions(
            form.validated_data["ids"], actor=request.user, request=request
        )
        return Response({"cancelled": cancelled})


@extend_schema_view(
    list=extend_schema(summary="Compromise responses, newest first, with their removal progress"),
    retrieve=extend_schema(summary="One compromise response and its progress"),
    create=extend_schema(
        summary="Mark a version compromised: forbidden everywhere, removal queued for its holders",
        request=s.MarkCompromisedSerializer,
        responses={201: s.CompromiseResponseSerializer, 400: REFUSED},
    ),
)
class CompromiseViewSet(ManagementApiMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.CompromiseResponseSerializer
    filterset_fields = ["version"]
    ordering_fields = ["marked_at"]
    action_permissions = {
        "list": ["policies.view_compromiseresponse"],
        "retrieve": ["policies.view_compromiseresponse"],
        "preview": ["components.mark_compromised"],
        "create": ["components.mark_compromised"],
    }

    def get_queryset(self):
        return CompromiseResponse.objects.select_related("version__component").order_by(
            "-marked_at", "-id"
        )

    def create(self, request, *args, **kwargs):
        form = s.MarkCompromisedSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        response = policies.mark_compromised(
            form.validated_data["version"],
            actor=request.user,
            reason=form.validated_data["reason"],
            replacement=form.validated_data["replacement"],
            request=request,
        )
        return Response(self.get_serializer(response).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="What marking a version compromised would do: holders, the replacement choices, policies",
        parameters=[s.CompromisePreviewQuerySerializer],
        responses={200: s.CompromisePreviewSerializer, 400: REFUSED},
    )
    @action(detail=False, methods=["get"])
    def preview(self, request):
        form = s.CompromisePreviewQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        preview = policies.compromise_preview(form.validated_data["version"])
        return Response(
            {
                "version": preview["version"].pk,
                "holders": preview["holders"],
                "already": preview["already"],
                "choices": [
                    {**choice, "version": choice["version"].pk if choice["version"] else None}
                    for choice in preview["choices"]
                ],
                "policies": [
                    {"policy": policy.pk, "group": policy.group.name, "note": note}
                    for policy, note in preview["policies"]
                ],
            }
        )
