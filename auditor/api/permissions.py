from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from ..access import READ_ROLES, WRITE_ROLES, can_write, has_any_role


class ImageSetRolePermission(BasePermission):
    """Readers and outsiders are refused (403); other organisations' objects are invisible (404 via querysets);
    developers read, quality/admin write."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        roles = READ_ROLES if request.method in SAFE_METHODS else WRITE_ROLES
        return has_any_role(request.user, roles)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        organisation_id = getattr(obj, "organisation_id", None) or obj.image_set.organisation_id
        return can_write(request.user, organisation_id)
