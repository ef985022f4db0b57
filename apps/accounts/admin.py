"""The user admin, with one change: users with audit history are deactivated, not deleted
(DESIGN.md decision 12). The audit trail names them and is append-only, so the delete page
lists that history as what protects the user and offers deactivation instead."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from apps.accounts import services

User = get_user_model()


class PortalUserAdmin(UserAdmin):
    actions = ["deactivate_selected"]

    def get_urls(self):
        deactivate = path(
            "<path:object_id>/deactivate/",
            self.admin_site.admin_view(self.deactivate_view),
            name="auth_user_deactivate",
        )
        return [deactivate, *super().get_urls()]

    def get_deleted_objects(self, objs, request):
        """Deleting a user with audit history would change audit rows: Django's delete page
        and the "delete selected" action refuse protected objects, so list the history there."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        history = services.audit_history_counts(objs)
        protected = list(protected) + [
            f"{user.get_username()}: {history[user.pk]} entries of the audit trail (append-only) "
            "name this user; deactivate the account instead"
            for user in objs
            if user.pk in history
        ]
        return deleted, counts, perms_needed, protected

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "audit_history": services.audit_history_counts([user]).get(user.pk, 0) if user else 0,
        }
        return super().delete_view(request, object_id, extra_context)

    def deactivate_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        user = get_object_or_404(User, pk=object_id)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        self._deactivate(request, user)
        return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))

    @admin.action(description="Deactivate selected users (they keep their audit history)",
                  permissions=["change"])
    def deactivate_selected(self, request, queryset):
        for user in queryset:
            self._deactivate(request, user)

    def _deactivate(self, request, user) -> None:
        try:
            changed = services.deactivate_user(user, actor=request.user, request=request)
        except services.AccountError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if changed:
            self.message_user(request, f"{user.get_username()} is deactivated.", messages.SUCCESS)
        else:
            self.message_user(request, f"{user.get_username()} was already inactive.")


# django.contrib.auth registered its UserAdmin first (it comes before us in INSTALLED_APPS).
admin.site.unregister(User)
admin.site.register(User, PortalUserAdmin)
