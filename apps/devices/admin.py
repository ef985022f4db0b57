"""Devices in the admin: read-only state, the exchange timeline, and agent registration."""

from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.attestation.admin import attestation_history_html
from apps.audit.models import AuditEvent
from apps.devices import services
from apps.devices.forms import RegisterAgentForm
from apps.devices.models import DeliveryItem, Device, InstalledComponent, SuitReport, Tag
from apps.policies.models import QueuedAction
from apps.policies.resolution import explain_due, groups_of
from apps.teep.wire.component_ids import component_id_from_key, component_id_text

TIMELINE_LENGTH = 50


def readable_component(key: str) -> str:
    try:
        return component_id_text(component_id_from_key(key))
    except ValueError:
        return key


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class InstalledComponentInline(ReadOnlyInline):
    model = InstalledComponent
    fields = ("component_readable", "version", "sequence_number", "image_digest", "updated_at")
    readonly_fields = fields
    verbose_name_plural = "Installed components"

    @admin.display(description="component id")
    def component_readable(self, row):
        return readable_component(row.component_key)


class DeliveryInline(ReadOnlyInline):
    model = DeliveryItem
    fields = ("created_at", "kind", "component_readable", "version", "state", "reason", "settled_at")
    readonly_fields = fields
    verbose_name_plural = "Deliveries (what Updates asked)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("version__component")

    @admin.display(description="component id")
    def component_readable(self, row):
        return readable_component(row.component_key)


class QueuedActionInline(ReadOnlyInline):
    model = QueuedAction
    fk_name = "device"
    fields = ("created_at", "kind", "component", "version", "state", "attempts", "reason", "settled_at")
    readonly_fields = fields
    verbose_name_plural = "Queued actions"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("component", "version__component")


class SuitReportInline(ReadOnlyInline):
    model = SuitReport
    fields = ("received_at", "message_type", "success", "summary")
    readonly_fields = fields
    verbose_name_plural = "SUIT reports"


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("__str__", "short_kid", "state", "numbering", "installed_count", "last_contact_at", "last_error_name")
    list_filter = ("state", "numbering", "registration", "tags")
    search_fields = ("kid", "name", "ueid")
    show_full_result_count = False
    readonly_fields = (
        "kid", "ueid", "state", "registration", "numbering", "signing_alg", "selected_version",
        "first_contact_at", "last_contact_at", "backoff_until", "last_error_code", "last_error_name",
        "last_error_msg", "agent_cipher_suites", "agent_versions", "requested_readable",
        "unneeded_readable", "ext_list", "registered_at", "registered_by", "exchange_timeline",
        "attributes", "due_explanation", "attestation_history", "outstanding_tokens", "public_key_pem",
    )
    fieldsets = (
        ("Identity and keys", {"fields": ("name", "tags", "kid", "public_key_pem", "ueid", "registration",
                                          "registered_at", "registered_by")}),
        ("Protocol", {"fields": ("state", "numbering", "signing_alg", "selected_version", "first_contact_at",
                                 "last_contact_at", "backoff_until", "outstanding_tokens")}),
        ("Attestation history", {"fields": ("attestation_history",)}),
        ("Last reported", {"fields": ("requested_readable", "unneeded_readable", "ext_list", "attributes")}),
        ("Policy: what is due at the next contact, and why", {"fields": ("due_explanation",)}),
        ("Last error from the agent", {"fields": ("last_error_code", "last_error_name", "last_error_msg",
                                                  "agent_cipher_suites", "agent_versions")}),
        ("Exchange timeline", {"fields": ("exchange_timeline",)}),
    )
    inlines = (InstalledComponentInline, QueuedActionInline, DeliveryInline, SuitReportInline)

    def get_queryset(self, request):
        # A correlated count is computed for the page's rows only, not by grouping the whole
        # fleet (100,000 devices: see bench/dashboard.py and bench/fanout.py).
        installed = (
            InstalledComponent.objects.filter(device=OuterRef("pk"))
            .order_by()
            .values("device")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(
            _installed=Coalesce(Subquery(installed, output_field=IntegerField()), 0)
        )

    def has_add_permission(self, request):
        return False  # agents are registered through the register view (a service call)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="kid")
    def short_kid(self, device):
        return f"{device.kid[:16]}…"

    @admin.display(description="installed", ordering="_installed")
    def installed_count(self, device):
        return device._installed

    @admin.display(description="requested components")
    def requested_readable(self, device):
        return ", ".join(readable_component(r["component_key"]) for r in device.requested_components) or "—"

    @admin.display(description="unneeded manifests")
    def unneeded_readable(self, device):
        return ", ".join(readable_component(k) for k in device.unneeded_manifests) or "—"

    @admin.display(description="agent signing key")
    def public_key_pem(self, device):
        key = services.device_public_key(device)
        algorithms = ", ".join(str(a) for a in key.algorithms)
        return format_html("<pre>{}</pre>COSE algorithms {}", key.public_pem().decode(), algorithms)

    @admin.display(description="appraisals (newest first)")
    def attestation_history(self, device):
        return attestation_history_html(device)

    @admin.display(description="outstanding requests")
    def outstanding_tokens(self, device):
        from django.utils import timezone

        from apps.teep.models import TeepToken

        rows = TeepToken.objects.filter(device=device).outstanding(timezone.now()).order_by("-issued_at")
        count = rows.count()
        oldest = rows.last()
        return f"{count} unanswered" + (f", oldest issued {oldest.issued_at:%Y-%m-%d %H:%M} UTC" if oldest else "")

    @admin.display(description="due")
    def due_explanation(self, device):
        decisions = explain_due(device)
        groups = ", ".join(g.name for g in groups_of(device)) or "none"
        if not decisions:
            return format_html("Groups: {}. Nothing: no policy, request or queued action concerns it.", groups)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    d.name,
                    d.held_version.version_label if d.held_version else ("unrecognised" if d.held else "—"),
                    ("waiting: " if d.waiting else "") + (d.action if d.action != "none" else "nothing"),
                    d.version.version_label if d.version else "",
                    d.reason,
                )
                for d in decisions
            ),
        )
        return format_html(
            "Groups: {}.<table class='due-explanation'><thead><tr><th>component</th><th>holds</th><th>due</th>"
            "<th>version</th><th>because</th></tr></thead><tbody>{}</tbody></table>",
            groups, rows,
        )

    @admin.display(description="latest exchanges")
    def exchange_timeline(self, device):
        events = AuditEvent.objects.filter(device_kid=device.kid).order_by("-created_at", "-id")[:TIMELINE_LENGTH]
        if not events:
            return "no exchange yet"
        rows = format_html_join(
            "",
            "<tr class='outcome-{}'><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.outcome,
                    e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.action,
                    e.detail.get("in", ""),
                    e.detail.get("out") or "nothing",
                    e.outcome,
                    e.reason,
                )
                for e in events
            ),
        )
        return format_html(
            "<table class='exchange-timeline'><thead><tr><th>time (UTC)</th><th>action</th>"
            "<th>in → out</th><th>outcome</th><th>reason</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def get_urls(self):
        return [
            path("register/", self.admin_site.admin_view(self.register_view), name="devices_device_register"),
            path("tam-keys/", self.admin_site.admin_view(self.tam_keys_view), name="devices_device_tam_keys"),
        ] + super().get_urls()

    def tam_keys_view(self, request):
        """The TAM public keys agents must be provisioned with (as `manage.py tam_keys export`)."""
        from apps.teep.tam_keys import exported_public_keys

        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "keys": exported_public_keys(),
                   "title": "TAM public keys", "opts": self.model._meta}
        return TemplateResponse(request, "admin/devices/device/tam_keys.html", context)

    def register_view(self, request):
        if not self.has_view_permission(request) or not request.user.has_perm("devices.change_device"):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = RegisterAgentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                device = services.register_agent(
                    public_key_bytes=form.cleaned_data["public_key_bytes"],
                    name=form.cleaned_data["name"],
                    tags=form.cleaned_data["tag_list"],
                    actor=request.user,
                    request=request,
                )
            except services.DeviceError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Registered agent {device.kid}", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:devices_device_change", args=[device.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Register a TEEP Agent key",
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/devices/device/register.html", context)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)
