"""A quality user uploads a zip in headless Chromium and watches the import finish."""
from __future__ import annotations

import pytest

from auditor.models import ImageSet
from tests.auditor.conftest import image_bytes, zip_bytes

from .browser import chromium_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow]


def test_upload_with_progress_in_the_browser(live_server, quality_user, tmp_path):
    image_set = ImageSet.objects.create(organisation=quality_user.memberships.get().organisation, name="browser", kind="generated")
    archive = tmp_path / "batch.zip"
    archive.write_bytes(zip_bytes({f"img_{i}.png": image_bytes(seed=i) for i in range(12)} | {"broken.png": b"xx"}))

    with chromium_page() as page:
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", "quality-a")
        page.fill("#id_password", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/sets/")
        page.goto(f"{live_server.url}/sets/{image_set.pk}/")
        page.set_input_files("#files", str(archive))
        page.click("#upload-form button[type=submit]")
        page.wait_for_function("document.getElementById('upload-status').textContent.startsWith('Import succeeded')", timeout=60_000)
        assert "12 imported" in page.text_content("#upload-status")
        page.wait_for_load_state("load")
        page.wait_for_selector("#ingest-errors >> text=batch.zip:broken.png", timeout=30_000)
        assert page.text_content("#image-count").strip() == "12"
        page.screenshot(path=str(tmp_path / "upload.png"))
    assert image_set.images.count() == 12
