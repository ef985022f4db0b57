from rest_framework.permissions import BasePermission


class ActionPermissions(BasePermission):
    """Each view declares `action_permissions = {action: [perm, ...]}` (action = the viewset
    action, or the lower-case HTTP method for plain API views). Anything not declared is
    refused: a new action is closed until someone decides who may run it."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        method = request.method.lower()
        if method == "options" or not hasattr(view, method):
            return True  # metadata, or a method the view does not handle: 405 follows
        action = getattr(view, "action", None) or method
        required = view.action_permissions.get(action)
        if required is None:
            return False
        return request.user.has_perms(required)
