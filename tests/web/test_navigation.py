"""One navigation bar on every page, auditor's and the reader-study app's alike, showing what the user's roles may use."""
from __future__ import annotations

import re

import pytest

from auditor.models import Membership, Role
from tests.auditor.conftest import make_user
from tests.web.worlds import real_set

pytestmark = pytest.mark.django_db
MANAGER_LINKS = ["Image sets", "Audits", "Compare audits", "Detectors", "Reader studies"]
READER_LINKS = ["My studies", "Profile"]


def nav_of(html: str) -> str:
    found = re.findall(r'<nav aria-label="Main" id="main-nav">.*?</nav>', html, flags=re.S)
    assert len(found) == 1, "exactly one main navigation bar"
    return found[0]


def labels(nav: str) -> list[str]:
    return re.findall(r"<a [^>]*>([^<]+)</a>", nav)


def current(nav: str) -> list[str]:
    return re.findall(r'<a [^>]*aria-current="page"[^>]*>([^<]+)</a>', nav)


def test_the_same_bar_on_every_page(client, quality_user, org, pad_dir, tmp_path):
    image_set = real_set(org, "pad", "generated", pad_dir, tmp_path, 1)
    client.force_login(quality_user)
    pages = {"/sets/": "Image sets", f"/sets/{image_set.pk}/": "Image sets", f"/sets/{image_set.pk}/images/": "Image sets",
             f"/images/{image_set.images.get().pk}/": "Image sets", "/audits/": "Audits", "/audits/compare/": "Compare audits",
             "/detectors/": "Detectors", "/studies/manage/": "Reader studies", "/studies/manage/new/": "Reader studies"}
    bars = set()
    for path, section in pages.items():
        response = client.get(path)
        assert response.status_code == 200, path
        nav = nav_of(response.content.decode())
        assert labels(nav) == MANAGER_LINKS and current(nav) == [section], path
        bars.add(nav.replace(' aria-current="page"', ""))
    assert len(bars) == 1


@pytest.mark.parametrize("role", [Role.QUALITY, Role.DEVELOPER, Role.ADMIN, Role.READER])
def test_each_role_sees_what_it_may_use(client, org, users, role):
    client.force_login(users[role])
    page = "/studies/" if role == Role.READER else "/audits/"
    html = client.get(page).content.decode()
    nav = nav_of(html)
    assert labels(nav) == (READER_LINKS if role == Role.READER else MANAGER_LINKS)
    for href in re.findall(r'<a href="([^"]+)"', nav):
        assert client.get(href).status_code in (200, 302), (role, href)  # every link shown opens for this role
    if role == Role.READER:
        assert not re.search(r'href="/(sets|images|audits|reports|detectors)/', html)


def test_a_user_with_two_roles_sees_both(client, org, other_org):
    user = make_user("both", org, Role.READER)
    Membership.objects.create(user=user, organisation=other_org, role=Role.QUALITY)
    client.force_login(user)
    nav = nav_of(client.get("/studies/profile/").content.decode())
    assert labels(nav) == MANAGER_LINKS + READER_LINKS and current(nav) == ["Profile"]
    assert "Reader, Clinic A; Quality, Clinic B" in client.get("/sets/").content.decode()


def test_no_bar_before_login(client):
    assert 'id="main-nav"' not in client.get("/login/").content.decode()
