"""The one navigation bar: every page (auditor's and the reader-study app's) gets the links the user's roles may use.

A context processor (settings.TEMPLATES), so no view has to remember to pass it and no page can drift from the others.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from auditor.access import READ_ROLES
from auditor.models import Membership, Role


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    current: bool


READER_ROLES = frozenset({Role.READER})
# (label, URL name, roles that may use it, other path prefixes that belong to the section). Readers rate blinded
# cases only: never image sets, images or audits.
LINKS = [
    ("Image sets", "web:imageset-list", READ_ROLES, ("/images/", "/generators/", "/jobs/")),
    ("Audits", "web:audit-list", READ_ROLES, ("/reports/",)),
    ("Compare audits", "web:audit-compare", READ_ROLES, ()),
    ("Detectors", "web:detector-list", READ_ROLES, ()),
    ("Reader studies", "reader_study:study-list", READ_ROLES, ()),
    ("My studies", "reader_study:home", READER_ROLES, ()),
    ("Profile", "reader_study:profile", READER_ROLES, ()),
]


def links_for(roles: set[str], path: str) -> list[NavLink]:
    links = [(label, reverse(name), prefixes) for label, name, allowed, prefixes in LINKS if roles & allowed]
    # The current section owns the longest prefix of the path ("/audits/compare/" beats "/audits/").
    matches = [(len(prefix), url) for _, url, prefixes in links for prefix in (url, *prefixes) if path.startswith(prefix)]
    current = max(matches)[1] if matches else None
    return [NavLink(label, url, url == current) for label, url, _ in links]


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_links": [], "nav_roles": []}
    memberships = list(Membership.objects.filter(user=user).select_related("organisation").order_by("organisation__name"))
    roles = {m.role for m in memberships}
    return {
        "nav_links": links_for(roles, request.path),
        "nav_roles": [f"{m.get_role_display().split(' (')[0]}, {m.organisation.name}" for m in memberships],
    }
