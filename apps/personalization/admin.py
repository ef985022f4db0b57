"""Personalization data in the admin: upload for one device, list with states, device keys.

Plaintext is accepted by the add form and never shown again: rows display its SHA-256 and
size. Every change goes through apps.personalization.services."""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from apps.personalization import services
from apps.personalization.forms import DeviceEncryptionKeyForm, PersonalizationUploadForm
from apps.personalization.models import DeviceEncryptionKey, PersonalizationData

_SHOWN_FIELDS = (
    "device",
    "component",
    "depends_on",
    "sequence_number",
    "digest_display",
    "plaintext_size",
    "state",
    "state_reason",
    "delivery_item_id",
    "key_id",
    "created_at",
    "created_by",
    "settled_at",
)


@admin.register(PersonalizationData)
class PersonalizationDataAdmin(admin.ModelAdmin):
    form = PersonalizationUploadForm
    list_display = (
        "component",
        "device",
        "sequence_number",
        "state",
        "digest_column",
        "plaintext_size",
        "created_at",
        "created_by",
    )
    list_filter = ("state", "component")
    search_fields = ("device__kid", "device__name", "component__name", "plaintext_sha256")
    list_select_related = ("device", "component", "created_by")
    show_full_result_count = False
    ordering = ("-created_at", "-id")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["device", "component", "depends_on", "data_file", "data_text"]
        return list(_SHOWN_FIELDS)

    def get_readonly_fields(self, request, obj=None):
        return _SHOWN_FIELDS if obj is not None else ()

    def has_change_permission(self, request, obj=None):
        # Stored data is immutable (upload newer data instead); the change page only shows it.
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="SHA-256", ordering="plaintext_sha256")
    def digest_column(self, data):
        return format_html(
            '<code title="{}">{}…</code>', data.plaintext_sha256, data.plaintext_sha256[:16]
        )

    @admin.display(description="SHA-256 of the data")
    def digest_display(self, data):
        return format_html("<code>{}</code>", data.plaintext_sha256)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data  # the form checked what the service would refuse
        stored = services.store_personalization_data(
            device=data["device"],
            component=data["component"],
            depends_on=data.get("depends_on"),
            plaintext=data["plaintext"],
            actor=request.user,
            request=request,
        )
        obj.pk = stored.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            f"Stored {obj.plaintext_size} bytes (SHA-256 {obj.plaintext_sha256}) for {obj.device}, "
            f"encrypted at rest, as sequence number {obj.sequence_number}.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:personalization_personalizationdata_change", args=[obj.pk])
        )

    def save_related(self, request, form, formsets, change):
        """Nothing related to save; the service stored the row."""


@admin.register(DeviceEncryptionKey)
class DeviceEncryptionKeyAdmin(admin.ModelAdmin):
    form = DeviceEncryptionKeyForm
    list_display = ("device", "kid", "registered_at", "registered_by")
    search_fields = ("device__kid", "device__name", "kid")
    list_select_related = ("device", "registered_by")
    readonly_fields = ("kid", "registered_at", "registered_by")

    def get_fields(self, request, obj=None):
        fields = ["device", "public_key_file", "public_key_text"]
        return fields + ["kid", "registered_at", "registered_by"] if obj is not None else fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        entry = services.register_device_encryption_key(
            device=form.cleaned_data["device"] if not change else obj.device,
            public_key_bytes=form.cleaned_data["public_key"],
            actor=request.user,
            request=request,
        )
        obj.pk = entry.pk
        obj.refresh_from_db()
