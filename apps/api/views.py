"""The management API (/api/v1/): thin views that parse, authorize (ActionPermissions), call
one service and render. Domain refusals (CatalogueError, DeviceError) become 400 with the
service's message."""

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api import serializers as s
from apps.api.filters import AuditEventFilter, ComponentVersionFilter, DeviceFilter
from apps.api.pagination import AuditCursorPagination
from apps.api.permissions import ActionPermissions
from apps.audit.models import AuditEvent
from apps.components import services as catalogue
from apps.components.models import ComponentVersion, TCSigner, TrustedComponent
from apps.devices import services as devices
from apps.devices.models import Device, Tag

DOMAIN_ERRORS = (catalogue.CatalogueError, devices.DeviceError)
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
            actor=request.user,
            request=request,
        )
        return Response(s.DeviceSerializer(device).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Trusted Components in the catalogue"),
    retrieve=extend_schema(summary="One Trusted Component"),
)
class TrustedComponentViewSet(ManagementApiMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.TrustedComponentSerializer
    search_fields = ["name", "vendor"]
    action_permissions = {
        "list": ["components.view_trustedcomponent"],
        "retrieve": ["components.view_trustedcomponent"],
    }

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


# --- Placeholders: the URL layout of the policy work, wired when apps.policies lands ----------

NOT_YET = OpenApiResponse(s.ErrorSerializer, description="not implemented yet")


class PlaceholderView(ManagementApiMixin, APIView):
    """Reserved route: authorizes like the final endpoint, then answers 501."""

    planned = ""

    def not_yet(self):
        return Response(
            {"detail": f"Not implemented yet: {self.planned}", "field": None},
            status=status.HTTP_501_NOT_IMPLEMENTED,
        )


def _answer_not_yet(method: str):
    # A new function per view: extend_schema annotates the function object itself.
    def handler(self, request, *args, **kwargs):
        return self.not_yet()

    handler.__name__ = method
    return handler


def placeholder(summary: str, planned: str, get_perms, post_perms=None):
    methods = {"get": get_perms} | ({"post": post_perms} if post_perms else {})
    decorated = extend_schema(
        summary=f"{summary} (planned)", description=planned, request=None, responses={501: NOT_YET}
    )
    attrs = {
        "planned": planned,
        "action_permissions": methods,
        "http_method_names": [*methods, "options"],
    }
    for method in methods:
        attrs[method] = decorated(_answer_not_yet(method))
    return type(f"Placeholder{summary.title().replace(' ', '')}View", (PlaceholderView,), attrs)


PoliciesView = placeholder(
    "policies",
    "GET lists policies (device group -> component, install/remove/pin), POST creates one; "
    "/api/v1/policies/{id}/ reads, updates and deletes one (apps.policies services).",
    ["policies.view_policy"],
    ["policies.add_policy"],
)
QueuedActionsView = placeholder(
    "queued actions",
    "GET lists queued actions (filter by device, component version, state); POST queues one "
    "(policies.services.queue_action); POST /api/v1/queued-actions/cancel/ cancels a list of ids "
    "(policies.services.cancel_actions).",
    ["policies.view_queuedaction"],
    ["policies.add_queuedaction"],
)
CompromiseView = placeholder(
    "compromise",
    "GET lists compromise responses with their fan-out progress; POST {version, reason} marks a "
    "version compromised (policies.services.mark_compromised); GET /api/v1/compromise/preview/"
    "?version=ID shows the devices affected first (policies.services.compromise_preview).",
    ["policies.view_compromiseresponse"],
    ["components.mark_compromised"],
)
