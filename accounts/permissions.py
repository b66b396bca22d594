from rest_framework.permissions import BasePermission


class IsTenantMember(BasePermission):
    """Authenticated, and a member of a tenant: every API read and write is scoped by that tenant."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.tenant_id is not None)
