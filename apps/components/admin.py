"""The catalogue in the admin: declarative classes; every change goes through services.py."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.components import services
from apps.components.forms import (
    ConfirmWithReasonForm,
    ReleaseForm,
    TCSignerForm,
    TrustedComponentAddForm,
    TrustedComponentChangeForm,
    UploadForm,
)
from apps.components.models import ComponentVersion, SignerKey, TCSigner, TrustedComponent
from apps.dashboard import rollout
from apps.dashboard.badges import state_badge
from apps.teep.wire.errors import SuitError

ENVELOPE_MEDIA_TYPE = "application/suit-envelope+cose"  # SUIT manifest 11.9


def short_digest(value: str) -> str:
    return f"{value[:16]}…" if value else "—"


class VersionInline(admin.TabularInline):
    """The component's version history, newest first; versions are added by the upload form."""

    model = ComponentVersion
    fk_name = "component"
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-sequence_number"]
    fields = (
        "version_label",
        "sequence_number",
        "state_badge",
        "digest",
        "binary_size",
        "signed_by_column",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="state")
    def state_badge(self, version):
        return state_badge("version", version.state, version.get_state_display())

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("signer")

    @admin.display(description="SHA-256")
    def digest(self, version):
        return short_digest(version.binary_sha256)

    @admin.display(description="signed by")
    def signed_by_column(self, version):
        return version.signed_by


@admin.register(TrustedComponent)
class TrustedComponentAdmin(admin.ModelAdmin):
    list_display = ("name", "vendor", "component_id_display", "version_count", "created_at")
    search_fields = ("name", "vendor", "description")
    inlines = [VersionInline]
    filter_horizontal = ("signers",)
    readonly_fields = (
        "component_id_display",
        "manifest_component_id_display",
        "created_at",
        "created_by",
    )

    def get_queryset(self, request):
        from django.db.models import Count

        # An aggregate drops Meta.ordering (GROUP BY): keep paginated lists ordered.
        return super().get_queryset(request).annotate(_version_count=Count("versions")).order_by("name")

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = TrustedComponentChangeForm if obj else TrustedComponentAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = [
                "name",
                "vendor",
                "component_id_text",
                "manifest_component_id_text",
                "suit_vendor_id",
                "suit_class_id",
                "description",
                "signers",
            ]
        else:
            fields = [
                "name",
                "vendor",
                "component_id_display",
                "manifest_component_id_display",
                "suit_vendor_id",
                "suit_class_id",
                "description",
                "signers",
                "created_at",
                "created_by",
            ]
        return [(None, {"fields": fields})]

    @admin.display(description="component id")
    def component_id_display(self, component):
        return format_html("<code>{}</code>", component.component_id_text)

    @admin.display(description="manifest component id")
    def manifest_component_id_display(self, component):
        return format_html("<code>{}</code>", component.manifest_component_id_text)

    @admin.display(description="versions", ordering="_version_count")
    def version_count(self, component):
        return component._version_count

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.update_component(
                obj,
                name=data["name"],
                vendor=data["vendor"],
                description=data["description"],
                signers=data["signers"],
                suit_vendor_id=data.get("suit_vendor_id"),
                suit_class_id=data.get("suit_class_id"),
                actor=request.user,
                request=request,
            )
        else:
            created = services.create_component(
                name=data["name"],
                vendor=data["vendor"],
                description=data["description"],
                component_id=data["component_id_text"],
                manifest_component_id=data.get("manifest_component_id_text"),
                signers=data["signers"],
                suit_vendor_id=data.get("suit_vendor_id"),
                suit_class_id=data.get("suit_class_id"),
                actor=request.user,
                request=request,
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """Signers are set by the service; the version inline is read-only."""
        for formset in formsets:  # read-only inlines: saves nothing, but the admin log reads them
            self.save_formset(request, form, formset, change=change)


class SignerKeyInline(admin.TabularInline):
    model = SignerKey
    extra = 0
    can_delete = False
    fields = ("kid", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TCSigner)
class TCSignerAdmin(admin.ModelAdmin):
    form = TCSignerForm
    list_display = ("name", "key_count", "created_at")
    search_fields = ("name", "keys__kid")
    inlines = [SignerKeyInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_key_count=Count("keys"))

    @admin.display(description="keys", ordering="_key_count")
    def key_count(self, signer):
        return signer._key_count

    def get_fields(self, request, obj=None):
        return ["name", "description", "components", "public_key_file", "public_key_text"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.update_signer(
                obj,
                name=data["name"],
                description=data["description"],
                components=data["components"],
                actor=request.user,
                request=request,
            )
            if data.get("public_key"):
                services.add_signer_key(
                    obj, public_key_bytes=data["public_key"], actor=request.user, request=request
                )
        else:
            created = services.register_signer(
                name=data["name"],
                description=data["description"],
                public_key_bytes=data["public_key"],
                components=data["components"],
                actor=request.user,
                request=request,
            )
            obj.pk = created.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """Components and keys are set by the services; the key inline is read-only."""
        for formset in formsets:  # read-only inlines: saves nothing, but the admin log reads them
            self.save_formset(request, form, formset, change=change)


@admin.register(ComponentVersion)
class ComponentVersionAdmin(admin.ModelAdmin):
    list_display = (
        "component",
        "version_label",
        "sequence_number",
        "state_badge",
        "digest",
        "binary_size",
        "delivery",
        "signed_by_column",
        "created_at",
    )
    list_filter = ("state", "delivery", "component")
    search_fields = ("component__name", "version_label", "binary_sha256", "envelope_sha256")
    list_select_related = ("component", "signer")
    show_full_result_count = False
    ordering = ("component__name", "-sequence_number")
    actions = ["release_selected", "withdraw_selected"]
    change_list_template = "admin/components/componentversion/change_list.html"
    fieldsets = [
        (
            None,
            {
                "fields": (
                    "component",
                    "version_label",
                    "sequence_number",
                    "state_badge",
                    "state_changed_reason",
                    "compromise_link",
                )
            },
        ),
        ("Rollout", {"fields": ("rollout",)}),
        (
            "Payload",
            {
                "fields": (
                    "delivery",
                    "binary_filename",
                    "binary_size",
                    "binary_sha256",
                    "payload_uri",
                )
            },
        ),
        (
            "SUIT envelope",
            {
                "fields": (
                    "signed_by_column",
                    "signer_kid",
                    "envelope_sha256",
                    "envelope_download",
                    "decoded_manifest",
                )
            },
        ),
        (
            "History",
            {"fields": ("created_at", "created_by", "updated_at", "updated_by", "released_at")},
        ),
    ]
    readonly_fields = (
        "component",
        "version_label",
        "sequence_number",
        "state_badge",
        "state_changed_reason",
        "compromise_link",
        "rollout",
        "delivery",
        "binary_filename",
        "binary_size",
        "binary_sha256",
        "payload_uri",
        "signed_by_column",
        "signer_kid",
        "envelope_sha256",
        "envelope_download",
        "decoded_manifest",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "released_at",
    )

    # --- columns and read-only fields -------------------------------------------------------

    @admin.display(description="state", ordering="state")
    def state_badge(self, version):
        return state_badge("version", version.state, version.get_state_display())

    @admin.display(description="devices")
    def rollout(self, version):
        """Who should hold it and how far it got (apps/dashboard/rollout.py): one aggregate."""
        if version.state == ComponentVersion.State.DRAFT:
            return "A draft is offered to no device: release it first."
        progress = rollout.rollout_progress(
            rollout.version_rollout(version), reverse("admin:devices_device_changelist")
        )
        return render_to_string("console/progress.html", {"p": progress})

    @admin.display(description="compromise")
    def compromise_link(self, version):
        """The compromise response starts from the version; its page checks the permission."""
        if version.state != ComponentVersion.State.RELEASED:
            return "—"
        url = reverse("admin:policies_compromiseresponse_add") + f"?version={version.pk}"
        return format_html(
            '<a class="deletelink" href="{}">Mark this version compromised…</a> (security officers)', url
        )

    @admin.display(description="SHA-256", ordering="binary_sha256")
    def digest(self, version):
        return format_html(
            '<code title="{}">{}</code>', version.binary_sha256, short_digest(version.binary_sha256)
        )

    @admin.display(description="signed by")
    def signed_by_column(self, version):
        return version.signed_by

    @admin.display(description="envelope")
    def envelope_download(self, version):
        url = reverse("admin:components_componentversion_envelope", args=[version.pk])
        return format_html(
            '<a href="{}" download="{}">{}</a> ({} bytes)',
            url,
            version.envelope_filename,
            version.envelope_filename,
            len(bytes(version.envelope)),
        )

    @admin.display(description="decoded manifest")
    def decoded_manifest(self, version):
        try:
            decoded = services.envelope_json(version)
            error = None
        except SuitError as exc:
            decoded, error = None, str(exc)
        return render_to_string(
            "components/decoded_manifest.html",
            {"version": version, "decoded": decoded, "error": error},
        )

    # --- permissions: versions come from the upload form and leave only by state ------------

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = ComponentVersion.objects.filter(pk=object_id).only("pk", "state").first() \
            if str(object_id).isdigit() else None
        may_release = (
            version is not None and version.state == ComponentVersion.State.DRAFT
            and self.has_change_permission(request, version)
        )
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "release_url": reverse("admin:components_componentversion_release", args=[version.pk])
            if may_release else "",
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:components_componentversion_upload"))

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="components_componentversion_upload",
            ),
            path(
                "<int:pk>/envelope/",
                self.admin_site.admin_view(self.envelope_view),
                name="components_componentversion_envelope",
            ),
            path(
                "<int:pk>/release/",
                self.admin_site.admin_view(self.release_view),
                name="components_componentversion_release",
            ),
            *super().get_urls(),
        ]

    # --- views ------------------------------------------------------------------------------

    def upload_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            version = self._upload(request, form)
            if version is not None:
                self.message_user(
                    request,
                    f"Uploaded {version}: sequence number {version.sequence_number}, "
                    f"SHA-256 {version.binary_sha256 or '—'}, "
                    f"{version.get_state_display().lower()}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:components_componentversion_change", args=[version.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload a Trusted Component version",
            "form": form,
        }
        return TemplateResponse(request, "admin/components/componentversion/upload.html", context)

    def _upload(self, request, form):
        data = form.cleaned_data
        try:
            if data["kind"] == UploadForm.KIND_BINARY:
                return services.upload_binary(
                    component=data["component"],
                    binary_file=data["file"],
                    version_label=data["version_label"],
                    sequence_number=data["sequence_number"],
                    delivery=data["delivery"],
                    release=data["release"],
                    actor=request.user,
                    request=request,
                )
            return services.upload_signed_envelope(
                component=data["component"],
                envelope_bytes=data["envelope_bytes"],
                version_label=data["version_label"],
                signer=data["signer"],
                release=data["release"],
                actor=request.user,
                request=request,
            )
        except services.CatalogueError as exc:
            field = {"binary": "file", "envelope": "file"}.get(exc.field, exc.field)
            form.add_error(field if field in form.fields else None, exc.message)
            return None

    def release_view(self, request, pk):
        """The version page's Release button: a confirmation page, then the release service
        (audited, refused unless newer than every version released before)."""
        version = ComponentVersion.objects.select_related("component").filter(pk=pk).first()
        if version is None:
            raise Http404
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        change_url = reverse("admin:components_componentversion_change", args=[version.pk])
        form = ReleaseForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.release_version(
                    version, actor=request.user, reason=form.cleaned_data["reason"], request=request
                )
            except services.CatalogueError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Released {version}: devices whose policy asks for the "
                                  "latest version get it at their next contact.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Release {version}?",
            "version": version,
            "form": form,
            "back_url": change_url,
        }
        return TemplateResponse(request, "admin/components/componentversion/confirm_release.html", context)

    def envelope_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = ComponentVersion.objects.select_related("component").filter(pk=pk).first()
        if version is None:
            raise Http404
        response = HttpResponse(bytes(version.envelope), content_type=ENVELOPE_MEDIA_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{version.envelope_filename}"'
        return response

    # --- actions ----------------------------------------------------------------------------

    @admin.action(description="Release selected versions", permissions=["change"])
    def release_selected(self, request, queryset):
        for version in queryset.order_by("component_id", "sequence_number"):
            try:
                services.release_version(version, actor=request.user, request=request)
            except services.CatalogueError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Released {version}.", messages.SUCCESS)

    @admin.action(description="Withdraw selected versions", permissions=["change"])
    def withdraw_selected(self, request, queryset):
        """Asks for a reason first (a confirmation page), then withdraws."""
        form = ConfirmWithReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            for version in queryset:
                try:
                    services.withdraw_version(
                        version,
                        actor=request.user,
                        reason=form.cleaned_data["reason"],
                        request=request,
                    )
                except services.CatalogueError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(request, f"Withdrew {version}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Withdraw versions",
            "form": form,
            "versions": queryset.select_related("component"),
            "action": "withdraw_selected",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/components/componentversion/confirm_withdraw.html", context
        )
