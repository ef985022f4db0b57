"""Attestation in the admin: endorsements and reference values (with file import), appraisal
records (read-only), a per-device history and a fleet view.

For the device page: `AttestationRecordInline` (add it to DeviceAdmin.inlines) or
`attestation_history_html(device)` (a readonly field), and the history page
`admin:attestation_history` (args: device pk).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.attestation import services
from apps.attestation.forms import ImportFileForm, ReferenceValueForm, RegisterAttestationKeyForm
from apps.attestation.models import AttestationKey, AttestationRecord, ReferenceValue
from apps.devices.models import Device

HISTORY_LENGTH = 50


def _require(request, perm: str):
    if not request.user.has_perm(perm):
        raise PermissionDenied


class _ImportMixin:
    import_perm = ""
    import_title = ""
    import_help = ""

    def import_service(self, upload, request):  # pragma: no cover - overridden
        raise NotImplementedError

    def import_view(self, request):
        _require(request, self.import_perm)
        form = ImportFileForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = self.import_service(form.cleaned_data["file"], request)
            except services.AttestationServiceError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(
                    request,
                    f"Imported {len(result.created)}, skipped {result.skipped} already present.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
                )
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": self.import_title,
            "help": self.import_help,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/attestation/import.html", context)


@admin.register(AttestationKey)
class AttestationKeyAdmin(_ImportMixin, admin.ModelAdmin):
    list_display = ("name", "purpose", "short_kid", "ueid", "active", "created_at")
    list_filter = ("purpose", "active")
    search_fields = ("name", "kid", "ueid")
    readonly_fields = (
        "name",
        "purpose",
        "kid",
        "public_key_pem",
        "ueid",
        "active",
        "created_at",
        "created_by",
    )
    exclude = ("public_key",)
    actions = ("activate", "deactivate")
    import_perm = "attestation.add_attestationkey"
    import_title = "Import attestation keys"
    import_help = (
        'JSON: a list of {"name", "purpose" ("endorsement" or "verifier"), "public_key" (PEM or '
        'COSE_Key hex) or "jwk", "ueid"}, or a JWK Set {"keys": [...]}.'
    )

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: records keep pointing at what signed them

    @admin.display(description="kid")
    def short_kid(self, row):
        return f"{row.kid[:16]}…"

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:attestation_attestationkey_register"))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("register/", view(self.register_view), name="attestation_attestationkey_register"),
            path("import/", view(self.import_view), name="attestation_attestationkey_import"),
        ] + super().get_urls()

    def register_view(self, request):
        _require(request, "attestation.add_attestationkey")
        form = RegisterAttestationKeyForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                row = services.register_attestation_key(
                    public_key_bytes=form.cleaned_data["public_key_bytes"],
                    name=form.cleaned_data["name"],
                    purpose=form.cleaned_data["purpose"],
                    ueid=form.cleaned_data["ueid"],
                    actor=request.user,
                    request=request,
                )
            except services.AttestationServiceError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request, f"Registered attestation key {row.kid}", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:attestation_attestationkey_change", args=[row.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Register an attestation key",
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/attestation/register_key.html", context)

    def import_service(self, upload, request):
        return services.import_attestation_keys(upload, actor=request.user, request=request)

    @admin.action(description="Activate the selected keys", permissions=["change"])
    def activate(self, request, queryset):
        for row in queryset:
            services.set_attestation_key_active(
                row, active=True, actor=request.user, request=request
            )
        self.message_user(request, "Activated.", messages.SUCCESS)

    @admin.action(description="Deactivate the selected keys", permissions=["change"])
    def deactivate(self, request, queryset):
        for row in queryset:
            services.set_attestation_key_active(
                row, active=False, actor=request.user, request=request
            )
        self.message_user(request, "Deactivated.", messages.SUCCESS)


@admin.register(ReferenceValue)
class ReferenceValueAdmin(_ImportMixin, admin.ModelAdmin):
    form = ReferenceValueForm
    list_display = ("name", "claim", "measurement_name", "expected", "scope_hwmodel", "active")
    list_filter = ("claim", "active")
    search_fields = ("name", "measurement_name", "expected")
    import_perm = "attestation.add_referencevalue"
    import_title = "Import reference values"
    import_help = (
        "JSON (a list of objects) or CSV with a header row; fields: name, claim (hwmodel, "
        "hwversion, "
        "oemid, measurement), measurement_name (measurements only), expected (hex; hwversion: the "
        "version text; oemid: hex or pen:<number>), scope_hwmodel (optional, hex)."
    )

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate (edit) instead; changes are audited

    def get_readonly_fields(self, request, obj=None):
        return ("name", "claim", "measurement_name", "expected", "scope_hwmodel") if obj else ()

    def get_fields(self, request, obj=None):
        return (
            ("name", "claim", "measurement_name", "expected", "scope_hwmodel", "active")
            if obj
            else ("name", "claim", "measurement_name", "expected", "scope_hwmodel")
        )

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["form"] = admin.ModelAdmin.form
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            from apps.audit.services import record_operator_action

            obj.save(update_fields=["active"])
            record_operator_action(
                actor=request.user,
                action="attestation.reference-value.change",
                obj=obj,
                request=request,
                after={"active": obj.active},
            )
            return
        created = services.create_reference_value(
            name=obj.name,
            claim=obj.claim,
            expected=obj.expected,
            measurement_name=obj.measurement_name,
            scope_hwmodel=obj.scope_hwmodel,
            actor=request.user,
            request=request,
        )
        obj.pk = created.pk
        obj.created_at = created.created_at

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="attestation_referencevalue_import",
            ),
        ] + super().get_urls()

    def import_service(self, upload, request):
        return services.import_reference_values(upload, actor=request.user, request=request)


@admin.register(AttestationRecord)
class AttestationRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "short_kid",
        "device",
        "backend",
        "model",
        "status",
        "first_reason",
    )
    list_filter = ("status", "backend", "model")
    search_fields = ("agent_kid", "device__name")
    list_select_related = ("device",)
    show_full_result_count = False
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "device",
        "agent_kid",
        "request",
        "backend",
        "model",
        "status",
        "claims",
        "reasons",
        "trust_vector",
        "challenge_hash",
        "raw_result_view",
    )
    exclude = ("raw_result",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="agent kid")
    def short_kid(self, row):
        return f"{row.agent_kid[:16]}…"

    @admin.display(description="reason")
    def first_reason(self, row):
        return (row.reasons or [""])[0][:120]

    @admin.display(description="raw result")
    def raw_result_view(self, row):
        raw = bytes(row.raw_result or b"")
        if raw[:3] == b"eyJ":  # an EAR JWT (Veraison)
            return format_html(
                "<code style='word-break:break-all'>{}</code>", raw.decode("ascii", "replace")
            )
        return format_html("<code style='word-break:break-all'>{}</code>", raw.hex())

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("fleet/", view(self.fleet_view), name="attestation_fleet"),
            path("device/<int:device_id>/", view(self.history_view), name="attestation_history"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "fleet_url": reverse("admin:attestation_fleet")}
        return super().changelist_view(request, extra_context)

    def fleet_view(self, request):
        _require(request, "attestation.view_attestationrecord")
        summary = services.fleet_summary()
        context = {
            **self.admin_site.each_context(request),
            "title": "Attestation status of the fleet",
            "opts": self.opts,
            **summary,
        }
        return TemplateResponse(request, "admin/attestation/fleet.html", context)

    def history_view(self, request, device_id: int):
        _require(request, "attestation.view_attestationrecord")
        device = get_object_or_404(Device, pk=device_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Attestation history of {device}",
            "opts": self.opts,
            "device": device,
            "history": attestation_history_html(device),
            "fresh": services.is_attestation_fresh(device),
        }
        return TemplateResponse(request, "admin/attestation/history.html", context)


class AttestationRecordInline(admin.TabularInline):
    """For DeviceAdmin.inlines: the device's latest appraisals, read-only."""

    model = AttestationRecord
    fk_name = "device"
    extra = 0
    can_delete = False
    max_num = 0
    fields = ("created_at", "backend", "model", "status", "reasons", "trust_vector")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    verbose_name_plural = "Attestation history"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def attestation_history_html(device, limit: int = HISTORY_LENGTH) -> str:
    """The device's appraisals, newest first (by agent kid: also those from before the device
    row existed)."""
    records = AttestationRecord.objects.filter(agent_kid=device.kid).order_by("-created_at", "-id")[
        :limit
    ]
    if not records:
        return format_html("<p>{}</p>", "no attestation yet")
    rows = format_html_join(
        "",
        "<tr class='attestation-{}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td></tr>",
        (
            (
                r.status,
                r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.backend,
                r.model,
                r.status,
                ", ".join(f"{k} {v}" for k, v in sorted(r.trust_vector.items())),
                "; ".join(r.reasons),
            )
            for r in records
        ),
    )
    return format_html(
        "<table class='attestation-history'><thead><tr><th>time (UTC)</th><th>verifier</th>"
        "<th>model</th><th>status</th><th>trust vector</th><th>reasons</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )
