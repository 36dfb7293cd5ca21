"""Who may do what: every query is scoped to the caller's organisations and role.

Kept separate from the API so that web views, the API and the reader-study app share one rule book.
"""
from __future__ import annotations

from django.db.models import QuerySet

from auditor.models import ImageSet, Membership, Role

# Roles that may see image sets, audits and reports / that may create and change them.
READ_ROLES = frozenset({Role.QUALITY, Role.DEVELOPER, Role.ADMIN})
WRITE_ROLES = frozenset({Role.QUALITY, Role.ADMIN})


def organisation_ids(user, roles) -> list[int]:
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user, role__in=list(roles)).values_list("organisation_id", flat=True))


def has_any_role(user, roles) -> bool:
    return bool(organisation_ids(user, roles))


def role_in(user, organisation_id: int) -> str | None:
    return Membership.objects.filter(user=user, organisation_id=organisation_id).values_list("role", flat=True).first()


def readable_image_sets(user) -> QuerySet[ImageSet]:
    return ImageSet.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES))


def can_write(user, organisation_id: int) -> bool:
    return role_in(user, organisation_id) in WRITE_ROLES
