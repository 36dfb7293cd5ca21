"""Headless Chromium through Playwright, using the system browser (nothing is downloaded), and the checks every
page must pass in it: no console error, every image loaded, alt text on every image, no serious or critical axe
violation; a full-page screenshot of each is kept as a test artefact."""
from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
BLOCKING_IMPACTS = {"serious", "critical"}


@contextmanager
def chromium_page(viewport=(1366, 768)):
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            yield page
        finally:
            browser.close()


def artefact_dir() -> Path:
    """Where screenshots go: $DERMAUDIT_TEST_ARTEFACTS, else var/test-artefacts (kept after the run)."""
    folder = Path(os.environ.get("DERMAUDIT_TEST_ARTEFACTS", Path(settings.VAR_DIR) / "test-artefacts")) / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page, base_url: str, username: str, password: str = "correct-horse-battery") -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("main button[type=submit]")


class PageChecker:
    """Visits pages and collects every problem (so one run reports all pages, not the first failure)."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url = page, base_url
        self.problems: list[str] = []
        self.console: list[str] = []
        self.axe_summary: dict[str, list[str]] = {}
        page.on("console", lambda message: message.type == "error" and self.console.append(message.text))
        page.on("pageerror", lambda error: self.console.append(str(error)))

    def visit(self, path: str, name: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.console.clear()
        response = self.page.goto(f"{self.base_url}{path}")
        if response is None or response.status != 200:
            self.problems.append(f"{name} {path}: HTTP {response.status if response else 'no response'}")
            return
        self.page.wait_for_load_state("networkidle")
        self.page.evaluate("() => Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
        broken = self.page.evaluate("() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        if broken:
            self.problems.append(f"{name} {path}: images not loaded: {broken}")
        without_alt = self.page.evaluate("() => Array.from(document.images).filter(i => !i.hasAttribute('alt') || !i.alt.trim()).map(i => i.src)")
        if without_alt:
            self.problems.append(f"{name} {path}: images without alt text: {without_alt}")
        results = Axe().run(self.page)
        violations = results.response["violations"]
        self.axe_summary[name] = [f"{v['id']} ({v['impact']})" for v in violations]
        blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
        for violation in blocking:
            targets = [node["target"] for node in violation["nodes"]][:5]
            self.problems.append(f"{name} {path}: axe {violation['impact']} {violation['id']}: {violation['help']} at {targets}")
        if self.console:
            self.problems.append(f"{name} {path}: console errors: {self.console}")
        self.page.screenshot(path=str(artefact_dir() / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"), full_page=True)

    def image_count(self) -> int:
        return self.page.evaluate("() => document.images.length")
