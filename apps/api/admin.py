from django.contrib import admin

from apps.api import services
from apps.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created by `manage.py create_api_token` (shown once); here they are listed
    and revoked (deleted)."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at")
    exclude = ("digest",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        services.revoke_token(obj, acting_user=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            services.revoke_token(token, acting_user=request.user, request=request)
