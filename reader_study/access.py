"""Who sees which study, built on auditor.access (one rule book for the whole service).

Managers (quality/admin write, developer reads) see the studies of their organisations. Readers see only their
own assignments, and only while they hold the reader role in the study's organisation. Lookups go through these
querysets, so another organisation's object is simply not found (404) and a role that never may is refused (403).
"""
from __future__ import annotations

from django.db.models import QuerySet

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, has_any_role, organisation_ids
from auditor.models import Role

from .models import Assignment, Showing, Study

READER_ROLES = frozenset({Role.READER})
# Interim (before close) statistics are for those who run the study, not for developers' integrations.
INTERIM_ROLES = WRITE_ROLES


def is_reader(user) -> bool:
    return has_any_role(user, READER_ROLES)


def is_manager(user) -> bool:
    return has_any_role(user, READ_ROLES)


def can_create(user) -> bool:
    return has_any_role(user, WRITE_ROLES)


def managed_studies(user) -> QuerySet[Study]:
    return Study.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES))


def can_change(user, study: Study) -> bool:
    return can_write(user, study.organisation_id)


def can_see_interim(user, study: Study) -> bool:
    return study.organisation_id in organisation_ids(user, INTERIM_ROLES)


def own_assignments(user) -> QuerySet[Assignment]:
    # One query: the membership condition is a join (this runs on every page a reader opens).
    return Assignment.objects.filter(
        reader=user, study__organisation__memberships__user=user, study__organisation__memberships__role__in=READER_ROLES
    )


def own_showings(user) -> QuerySet[Showing]:
    return Showing.objects.filter(
        assignment__reader=user, assignment__study__organisation__memberships__user=user,
        assignment__study__organisation__memberships__role__in=READER_ROLES,
    )
