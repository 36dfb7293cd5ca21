"""A reader in headless Chromium: logs in, answers with the keyboard only, reloads and logs out mid-study,
and resumes where they left off; the page fits a 1366×768 laptop screen."""
from __future__ import annotations

import pytest
from django.db import connections

from auditor.models import Organisation
from reader_study.models import Answer, Showing
from reader_study.services import invite_readers, open_study

from .helpers import build_sets, make_reader, make_study

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the test itself are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it here, in the same
        # context, or PostgreSQL cannot drop the test database afterwards.
        connections.close_all()


def _log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/")  # the site's front door: login, then the reader's landing page
    page.fill("#id_username", "reader-k")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/studies/")


def _answer_with_keys(page, call_key: str) -> str:
    token = page.input_value("input[name=token]")
    with page.expect_navigation():
        for key in (call_key, "4", "c", "Enter"):
            page.keyboard.press(key)
    return token


def test_reader_answers_with_the_keyboard_reloads_and_resumes(live_server, browser_page, isic_dir, tmp_path):
    org = Organisation.objects.create(name="Clinic")
    real, synthetic = build_sets(org, isic_dir, tmp_path, 4, 4)
    study = make_study(org, real, synthetic, image_size=512)
    reader = make_reader("reader-k", org)
    invite_readers(study, [reader])
    open_study(study)
    page, base = browser_page, live_server.url

    _log_in(page, base)
    page.click("text=Start")
    page.wait_for_selector("#answer-form")
    page.wait_for_function("document.querySelector('.rs-image img').complete")
    assert page.evaluate("document.querySelector('.rs-image img').naturalWidth") == 512
    for box in (page.locator(".rs-image img").bounding_box(), page.locator("#send-answer").bounding_box()):
        assert box["y"] + box["height"] <= 768 and box["x"] + box["width"] <= 1366  # no scrolling on a laptop

    # Enter before every question is answered submits nothing and says why.
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    assert page.is_visible("#incomplete") and Answer.objects.count() == 0

    answered = [_answer_with_keys(page, "s"), _answer_with_keys(page, "r")]
    page.keyboard.press("s")
    page.keyboard.press("2")
    page.keyboard.press("b")
    with page.expect_navigation():
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")  # an impatient double Enter must not answer the next case too
    answered.append(Answer.objects.latest("id").showing.token)
    assert Answer.objects.count() == 3
    assert "3 of 8 answered" in page.inner_text(".rs-progress")

    current = page.input_value("input[name=token]")
    page.reload()
    assert page.input_value("input[name=token]") == current and "3 of 8 answered" in page.inner_text(".rs-progress")

    page.click(".logout button")
    page.wait_for_url(f"{base}/login/")
    _log_in(page, base)
    page.click("text=Resume")
    page.wait_for_selector("#answer-form")
    assert page.input_value("input[name=token]") == current  # back at the first unanswered case
    _answer_with_keys(page, "r")

    stored = {a.showing.token: a for a in Answer.objects.select_related("showing")}
    assert set(answered) < set(stored) and len(stored) == 4
    assert [stored[t].called_synthetic for t in answered] == [True, False, True]
    assert (stored[answered[0]].confidence, stored[answered[0]].quality) == (4, 3)
    assert (stored[answered[2]].confidence, stored[answered[2]].quality) == (2, 5)
    positions = sorted(Showing.objects.filter(token__in=stored).values_list("position", flat=True))
    assert positions == [0, 1, 2, 3]
