from django.contrib import admin

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everybody, superusers included."""

    list_display = ("created_at", "kind", "action", "outcome", "actor_name", "device_kid", "object_repr")
    list_filter = ("kind", "outcome", "action")
    search_fields = ("device_kid", "actor_name", "object_repr", "reason")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_select_related = ("actor",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
