"""Building blocks for reader-study tests: image sets that differ the way real and generated sets do
(large EXIF-tagged JPEGs vs small PNGs with text chunks), studies, readers and answering."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image as PILImage
from PIL import PngImagePlugin

from auditor.ingestion.importer import run_ingest
from auditor.models import ImageSet, IngestJob, Membership, Organisation, Role
from reader_study.models import Answer, ReaderProfile, Showing, Study
from reader_study.services import ArmSpec, StudyDesign, close_study, create_study, invite_readers, open_study

DIAGNOSES = ["nevus", "melanoma"]


def make_user(username: str, organisation: Organisation, role: str):
    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery")
    Membership.objects.create(user=user, organisation=organisation, role=role)
    return user


def make_reader(username: str, organisation: Organisation, profile: bool = True):
    user = make_user(username, organisation, Role.READER)
    if profile:
        ReaderProfile.objects.create(user=user, specialty="dermatology", years_experience=7, board_certified=True)
    return user


def synthetic_png(seed: int, size: int = 64) -> bytes:
    """A smooth 'generated' PNG carrying the metadata generators like to write."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, size=(8, 8, 3), dtype=np.uint8)
    image = PILImage.fromarray(base).resize((size, size), PILImage.Resampling.BICUBIC)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"dcgan seed={seed}")
    info.add_text("Software", "stylegan3")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def real_jpeg_with_metadata(source: Path) -> bytes:
    """A real dermoscopy JPEG, re-saved with an EXIF camera tag and an ICC profile, as a clinic's files are."""
    with PILImage.open(source) as image:
        exif = image.getexif()
        exif[0x010F] = "DermLite"  # Make
        exif[0x0110] = "DL4"  # Model
        buffer = io.BytesIO()
        icc = b"\0" * 128  # a placeholder profile blob: what matters is that the bytes carry one
        image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc)
        return buffer.getvalue()


def ingest_files(image_set: ImageSet, files: dict[str, bytes], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    job = IngestJob.objects.create(image_set=image_set, source="test", source_paths=[str(p) for p in paths])
    run_ingest(job, paths)
    assert image_set.images.count() == len(files), list(image_set.ingest_errors.values_list("reason", flat=True))


def build_sets(organisation: Organisation, isic_dir: Path, tmp_path: Path, n_real: int = 4, n_synthetic: int = 4,
               tag: str = "") -> tuple[ImageSet, ImageSet]:
    """A reference set of real ISIC JPEGs and a generated set of small PNGs, labelled alternately."""
    real = ImageSet.objects.create(organisation=organisation, name=f"isic{tag}", kind=ImageSet.Kind.REFERENCE)
    synthetic = ImageSet.objects.create(organisation=organisation, name=f"gan{tag}", kind=ImageSet.Kind.GENERATED,
                                        generator_name="dcgan", generator_version="1")
    sources = sorted((isic_dir / "images").glob("*.jpg"))[:n_real]
    ingest_files(real, {f"real_{i}.jpg": real_jpeg_with_metadata(p) for i, p in enumerate(sources)}, tmp_path / f"real{tag}")
    ingest_files(synthetic, {f"fake_{i}.png": synthetic_png(i) for i in range(n_synthetic)}, tmp_path / f"fake{tag}")
    for image_set in (real, synthetic):
        for i, image in enumerate(image_set.images.order_by("id")):
            image.diagnosis = DIAGNOSES[i % 2]
            image.save(update_fields=["diagnosis"])
        image_set.refresh_manifest()
    return real, synthetic


def make_study(organisation: Organisation, real: ImageSet, synthetic: ImageSet, *, n_real: int | None = None,
               n_synthetic: int | None = None, created_by=None, **design) -> Study:
    arms = (ArmSpec(synthetic.pk, n_synthetic or synthetic.images.count()), ArmSpec(real.pk, n_real or real.images.count()))
    defaults = {"name": f"study-{Study.objects.count() + 1}", "image_size": 128, "seed": 7}
    return create_study(organisation, StudyDesign(arms=arms, **{**defaults, **design}), created_by=created_by)


ANSWER = {"call": "synthetic", "confidence": "4", "quality": "3"}


def web_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def current_token(html: str) -> str:
    import re

    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, "no case on the page"
    return match.group(1)


def studies_in_every_state(organisation: Organisation, reader, arms: tuple[ArmSpec, ArmSpec], tag: str) -> dict:
    """A draft study, an open one with `reader` invited (the first case answered, the next waiting) and a closed
    one the reader answered in full: the objects an access or schema test needs in each state."""

    def design(name: str, **options) -> StudyDesign:
        return StudyDesign(name=f"{name}-{tag}", arms=arms, image_size=64, seed=1, **options)

    draft = create_study(organisation, design("draft"))
    study = create_study(organisation, design("open", allow_changes=True))
    closed = create_study(organisation, design("closed"))
    for each in (study, closed):
        invite_readers(each, [reader])
        open_study(each)
    now = timezone.now()
    answered = Showing.objects.filter(assignment__study=study, assignment__reader=reader).order_by("position").first()
    Answer.objects.create(showing=answered, called_synthetic=True, confidence=2, quality=3, served_at=now,
                          answered_at=now, duration_ms=0)
    for showing in Showing.objects.filter(assignment__study=closed):
        Answer.objects.create(showing=showing, called_synthetic=showing.position % 2 == 0, confidence=3, quality=3,
                              served_at=now, answered_at=now, duration_ms=0)
    close_study(closed)
    assignment = study.assignments.get(reader=reader)
    waiting = Showing.objects.filter(assignment=assignment, answer__isnull=True).order_by("position").first()
    return {"draft": draft, "study": study, "closed": closed, "assignment": assignment, "answered": answered,
            "showing": waiting}
