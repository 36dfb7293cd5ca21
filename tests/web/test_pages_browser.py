"""Every page in headless Chromium at 1366 px: no console error, every image loaded (naturalWidth > 0) and described
(alt text), no serious or critical axe-core violation; a full-page screenshot of each page is saved as an artefact
(tests/web/browser.py: artefact_dir). And the pages work from the keyboard alone."""
from __future__ import annotations

import pytest
from django.db import connections

from auditor.models import DetectorScoring, GeneratorRun, Organisation, Role
from reader_study.models import ReaderProfile
from reader_study.services import ArmSpec, StudyDesign, create_study, invite_readers, open_study
from tests.auditor.conftest import make_user

from .browser import PageChecker, chromium_page, log_in
from .worlds import audit_sets, finished_audit, score_images

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def world(isic_dir, pad_dir, tmp_path, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the test itself are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    org = Organisation.objects.create(name="Clinic A")
    quality = make_user("quality-a", org, Role.QUALITY)
    reader = make_user("reader-a", org, Role.READER)
    ReaderProfile.objects.create(user=reader, specialty="dermatology", years_experience=7, board_certified=True)
    sets = audit_sets(org, isic_dir, pad_dir, tmp_path)
    first = finished_audit(org, quality, sets, "generator run")
    rerun = finished_audit(org, quality, sets, "generator re-run", results={r.stage: r.data for r in first.results.exclude(stage="report")})
    score_images(sets["generated"], first.detector)
    scoring = DetectorScoring.objects.get(detector=first.detector, image_set=sets["generated"])
    generator = GeneratorRun.objects.create(organisation=org, kind="dcgan", reference_set=sets["reference"], max_steps=1,
                                            status="succeeded", progress={"step": 1, "losses": {"d": 0.5, "g": 1.2}})
    study = create_study(org, StudyDesign(name="realism", arms=(ArmSpec(sets["generated"].pk, 3), ArmSpec(sets["reference"].pk, 3)),
                                          image_size=128, seed=3), created_by=quality)
    invite_readers(study, [reader])
    open_study(study)
    yield {"org": org, "sets": sets, "first": first, "rerun": rerun, "scoring": scoring, "generator": generator, "study": study}
    connections.close_all()  # connections opened while Playwright's loop ran


def test_every_page_passes_in_chromium(live_server, world):
    sets, first, rerun = world["sets"], world["first"], world["rerun"]
    image = sets["generated"].images.order_by("id").first()
    detector = first.detector
    quality_pages = [
        ("/sets/", "image sets"),
        (f"/sets/{sets['generated'].pk}/", "image set"),
        (f"/sets/{sets['generated'].pk}/images/", "thumbnail grid"),
        (f"/sets/{sets['generated'].pk}/images/?fitzpatrick=2&order=score-desc", "thumbnail grid filtered"),
        (f"/images/{image.pk}/", "image"),
        ("/audits/", "audits"),
        (f"/audits/{first.pk}/", "audit"),
        (f"/audits/compare/?a={first.pk}&b={rerun.pk}", "audit comparison"),
        ("/audits/compare/", "audit comparison form"),
        ("/detectors/", "detectors"),
        (f"/detectors/{detector.pk}/", "detector"),
        (f"/detectors/{detector.pk}/scorings/{world['scoring'].pk}/", "detector scoring"),
        (f"/generators/{world['generator'].pk}/", "generator"),
        ("/studies/manage/", "reader studies"),
        ("/studies/manage/new/", "new reader study"),
        (f"/studies/manage/{world['study'].pk}/", "reader study"),
        (f"/studies/manage/{world['study'].pk}/results/?interim=1", "reader study interim results"),
    ]
    reader_pages = [("/studies/", "reader home"), ("/studies/profile/", "reader profile"),
                    (f"/studies/{world['study'].pk}/read/", "reader case")]
    with chromium_page() as page:
        checker = PageChecker(page, live_server.url)
        checker.visit("/login/", "login")
        log_in(page, live_server.url, "quality-a")
        for path, name in quality_pages:
            checker.visit(path, name)
            if name == "audit":  # the report's charts, memorisation pairs and Grad-CAM maps are on the page
                stages = {r.stage: r.data for r in first.results.all()}
                assert checker.image_count() >= 3 + len(stages["memorization"]["pairs"]) + len(stages["explanations"]["overlays"])
        page.click("header .logout button")
        log_in(page, live_server.url, "reader-a")
        for path, name in reader_pages:
            checker.visit(path, name)
    print("axe violations of any impact, per page:", checker.axe_summary)
    assert not checker.problems, "\n".join(checker.problems)


def _tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => document.activeElement && document.activeElement.matches({selector!r})"):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"{selector} has no visible focus"
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_the_pages_work_from_the_keyboard(live_server, world):
    sets, first, rerun = world["sets"], world["first"], world["rerun"]
    with chromium_page() as page:
        log_in(page, live_server.url, "quality-a")
        page.goto(f"{live_server.url}/sets/{sets['generated'].pk}/images/")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
        # Filter by a label with the keyboard: choose the first Fitzpatrick value, then submit.
        _tab_to(page, "#id_fitzpatrick")
        page.keyboard.press("ArrowDown")
        chosen = page.input_value("#id_fitzpatrick")
        _tab_to(page, "#image-filters button[type=submit]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert f"fitzpatrick={chosen}" in page.url
        expected = sets["generated"].images.filter(fitzpatrick=int(chosen)).count()
        assert page.locator("#thumbnail-grid li").count() == expected
        # Open an image from the grid, then walk to the next one.
        _tab_to(page, "#thumbnail-grid a")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "/images/" in page.url
        _tab_to(page, "a[rel=next]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "/images/" in page.url

        # The audit page: open a chart's numbers, then compare with the re-run from the page's own form.
        page.goto(f"{live_server.url}/audits/{first.pk}/")
        _tab_to(page, "#chart-1 summary")
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.querySelector('#chart-1 details').open")
        page.goto(f"{live_server.url}/audits/{first.pk}/")
        _tab_to(page, "#compare-with")
        assert page.input_value("#compare-with") == str(rerun.pk)  # the only other audit of the organisation
        _tab_to(page, "#compare-form button[type=submit]")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.text_content("#comparison-summary").strip().startswith("All ")
