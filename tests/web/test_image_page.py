"""One image's page: labels, estimated phototype with its method, every detector's P(synthetic), the normalisation
done at import, and its duplicates."""
from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from auditor.models import DetectorRun, Image, ImageScore, ImageSet
from tests.auditor.conftest import image_bytes
from tests.web.pages import table, visible_text
from tests.web.worlds import real_set

pytestmark = pytest.mark.django_db


def test_labels_estimate_scores_notes_and_duplicates(client, quality_user, org, pad_dir, tmp_path, django_capture_on_commit_callbacks):
    pad = real_set(org, "pad", "generated", pad_dir, tmp_path, 3)
    image = pad.images.exclude(fitzpatrick=None).order_by("id").first()
    Image.objects.filter(pk=image.pk).update(fitzpatrick_estimate=3, ita_deg=31.25, phototype_method="ita-kinyanjui-2020",
                                             phototype_note="")
    detector = DetectorRun.objects.create(organisation=org, reference_set=pad, status="succeeded")
    ImageScore.objects.create(detector=detector, image=image, probability_synthetic=0.8765)
    client.force_login(quality_user)
    html = client.get(f"/images/{image.pk}/").content.decode()
    text = visible_text(html)
    roman = ["I", "II", "III", "IV", "V", "VI"][image.fitzpatrick - 1]
    assert f"Diagnosis {image.diagnosis}" in text and f"Fitzpatrick phototype (label) {roman}" in text
    assert "Acquisition clinical" in text and f"patient_id {image.extra_labels['patient_id']}" in text
    assert "Estimate III Method ita-kinyanjui-2020, ITA 31.3°" in text
    assert table(html, id="image-scores")[1] == [f"run #{detector.pk}", "0.877", detector.created_at.strftime("%Y-%m-%d")]
    assert "None: stored as uploaded (PNG, RGB)." in text and "Duplicates" in text
    assert f'src="/images/{image.pk}/thumbnail/640/"' in html and f'href="/api/images/{image.pk}/file/"' in html


def test_normalisation_notes_and_duplicates_from_an_upload(client, quality_user, org, django_capture_on_commit_callbacks):
    first = ImageSet.objects.create(organisation=org, name="uploads", kind="generated")
    second = ImageSet.objects.create(organisation=org, name="again", kind="generated")
    rgba = image_bytes("PNG", mode="RGBA", seed=4)
    client.force_login(quality_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/sets/{first.pk}/upload/", {"files": [SimpleUploadedFile("alpha.png", rgba), SimpleUploadedFile("copy.png", rgba)]})
        client.post(f"/sets/{second.pk}/upload/", {"files": [SimpleUploadedFile("elsewhere.png", rgba)]})
    image = first.images.get()
    assert image.normalisation_notes and PILImage.open(io.BytesIO(rgba)).mode == "RGBA"
    html = client.get(f"/images/{image.pk}/").content.decode()
    notes = visible_text(html).split("Normalisation at import")[1].split("Duplicates")[0]
    for note in image.normalisation_notes:
        assert str(note) in notes
    duplicates = table(html, id="duplicates")[1:]
    duplicate_file = first.duplicate_records.get().file_name
    assert [duplicate_file, "upload of"] == [duplicates[0][0], duplicates[0][1][:9]]
    assert duplicates[1] == ["elsewhere.png", "set again"]
    assert f'href="/images/{second.images.get().pk}/"' in html


def test_previous_and_next_walk_the_set(client, quality_user, org, pad_dir, tmp_path):
    pad = real_set(org, "pad", "generated", pad_dir, tmp_path, 3)
    first, middle, last = pad.images.order_by("id")
    client.force_login(quality_user)
    html = client.get(f"/images/{middle.pk}/").content.decode()
    assert f'href="/images/{first.pk}/" rel="prev"' in html and f'href="/images/{last.pk}/" rel="next"' in html
    assert 'rel="prev"' not in client.get(f"/images/{first.pk}/").content.decode()
