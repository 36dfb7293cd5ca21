from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, has_any_role


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
        return can_write(request.user, organisation_of(obj))


def organisation_of(obj) -> int:
    """The organisation an object belongs to, directly or through its image set or audit."""
    for path in ("organisation_id", "image_set.organisation_id", "audit.organisation_id"):
        value = obj
        for attribute in path.split("."):
            value = getattr(value, attribute, None)
        if value is not None:
            return value
    raise TypeError(f"{type(obj).__name__} has no organisation")
