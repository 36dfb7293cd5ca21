"""Server time of an image set's thumbnail grid with 2,000 images, after the first view made the thumbnails.

Builds, in a throw-away var folder (SQLite, media; DERMAUDIT_VAR_DIR is set to it before Django starts), one set of
--images distinct re-encoded JPEG crops of ../shared/data's isic-uda1 and pad-ufes-20 images with their labels,
imported through the real importer, and a detector's P(synthetic) for every image (so the grid shows scores, as it
does for a scored set). Then, with the Django test client in this process (production settings: DEBUG off):

1. first view: every page of the grid and its thumbnails once, in order; this makes the thumbnails (timed apart);
2. --rounds times over every page (and the same with a diagnosis filter + score order): the page's HTML, then each of
   its thumbnails as a browser without a cache asks for them (full 200 responses), then as a browser with a cache
   revalidates them (If-None-Match, 304). Requests are sequential, so "page + thumbnails" is the server time one
   page of thumbnails costs, summed.

Prints p50/p95/max wall-clock milliseconds per kind of request, the CPU milliseconds this process spent on them (the
part that does not depend on other jobs sharing the cores), and the target: p95 of "page + thumbnails" < 300 ms.

    .venv/bin/python benchmarks/set_page.py [--images 2000] [--rounds 3] [--keep]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))
TARGET_MS = 300.0


def sources() -> list[tuple[Path, dict]]:
    """(image path, labels) of every shared image."""
    found = []
    for name in ("isic-uda1", "pad-ufes-20"):
        with open(SHARED / name / "labels.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                found.append((SHARED / name / row["file"], row))
    return found


def build_folder(folder: Path, n: int) -> None:
    """n distinct 256-px JPEG crops (a different crop of each source image per round) and their labels.csv. The
    shared sets hold a few pictures twice: a crop whose pixels were already made is skipped."""
    from PIL import Image

    pool = sources()
    folder.mkdir(parents=True)
    rows, seen, i = [], set(), 0
    while len(rows) < n:
        path, labels = pool[i % len(pool)]
        variant = i // len(pool)
        i += 1
        with Image.open(path) as image:
            image = image.convert("RGB")
            w, h = image.size
            side = int(min(w, h) * (0.9 - 0.1 * variant))
            left, top = (w - side) // 2 + 5 * variant, (h - side) // 2
            crop = image.crop((left, top, left + side, top + side)).resize((256, 256), Image.Resampling.LANCZOS)
        pixels = hashlib.sha256(crop.tobytes()).digest()
        if pixels in seen:
            continue
        seen.add(pixels)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=90)
        name = f"img_{len(rows):05d}.jpg"
        (folder / name).write_bytes(buffer.getvalue())
        rows.append({"file": name, "diagnosis": labels.get("diagnosis", ""), "fitzpatrick": labels.get("fitzpatrick", ""),
                     "acquisition": labels.get("acquisition", "")})
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "diagnosis", "fitzpatrick", "acquisition"])
        writer.writeheader()
        writer.writerows(rows)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the var folder (printed) for a look afterwards")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="dermaudit-set-page-"))
    os.environ.update({"DERMAUDIT_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "auditor.settings", "DJANGO_DEBUG": "0",
                       "DJANGO_SECRET_KEY": "benchmark-only-" + "x" * 40, "DJANGO_SECURE_SSL_REDIRECT": "0"})
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    sys.path.insert(0, str(REPO))
    try:
        return run(var, args)
    finally:
        if args.keep:
            print(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)


def run(var: Path, args) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from auditor.ingestion.importer import run_ingest
    from auditor.models import DetectorRun, ImageScore, ImageSet, IngestJob, Membership, Organisation, Role
    from auditor.web.image_views import IMAGES_PER_PAGE
    from django.contrib.auth import get_user_model

    call_command("migrate", verbosity=0)
    start = time.perf_counter()
    build_folder(var / "source", args.images)
    org = Organisation.objects.create(name="Bench clinic")
    user = get_user_model().objects.create_user("bench", password=None)
    Membership.objects.create(user=user, organisation=org, role=Role.QUALITY)
    image_set = ImageSet.objects.create(organisation=org, name="2000 crops", kind=ImageSet.Kind.GENERATED)
    job = IngestJob.objects.create(image_set=image_set, source="benchmark", source_paths=[str(var / "source")])
    run_ingest(job, [var / "source"])
    count = image_set.images.count()
    if count != args.images:
        print(f"imported {count} of {args.images} images: {job.message}")
        return 1
    detector = DetectorRun.objects.create(organisation=org, reference_set=image_set, status="succeeded")
    ids = list(image_set.images.order_by("id").values_list("id", flat=True))
    ImageScore.objects.bulk_create([ImageScore(detector=detector, image_id=pk, probability_synthetic=(i * 7919 % 1000) / 1000)
                                    for i, pk in enumerate(ids)])
    image_set.detector_scorings.create(detector=detector, status="succeeded", total=count, processed=count)
    print(f"set of {count} images built and imported in {time.perf_counter() - start:.1f} s ({var})")

    client = Client()
    client.force_login(user)
    pages = -(-count // IMAGES_PER_PAGE)
    base = f"/sets/{image_set.pk}/images/"
    diagnosis = image_set.images.order_by("id").values_list("diagnosis", flat=True).first()
    filtered = f"{base}?diagnosis={diagnosis}&order=score-desc"
    filtered_pages = -(-image_set.images.filter(diagnosis=diagnosis).count() // IMAGES_PER_PAGE)

    cpu_ms: dict[str, float] = {}

    def get(url: str, **headers):
        """(response, body, wall ms); the CPU ms of this process for it are kept in cpu_ms[url]."""
        begin, begin_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, **headers)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        elapsed = (time.perf_counter() - begin) * 1000
        cpu_ms[url] = (time.process_time() - begin_cpu) * 1000
        if response.status_code not in (200, 304):
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        return response, body, elapsed

    def thumbnails_of(html: bytes) -> list[str]:
        return re.findall(r'src="(/images/\d+/thumbnail/\d+/)"', html.decode())

    first_view = []
    start = time.perf_counter()
    for page in range(1, pages + 1):
        _, html, html_ms = get(f"{base}?page={page}")
        first_view.append(html_ms + sum(get(url)[2] for url in thumbnails_of(html)))
    print(f"first view (makes {count} thumbnails): {time.perf_counter() - start:.1f} s in all; per page p50 "
          f"{statistics.median(first_view):.0f} ms, p95 {percentile(first_view, 95):.0f} ms")

    kinds = ("page HTML", "one thumbnail (200)", "one thumbnail (304)", "page + thumbnails (200)", "page + thumbnails (304)",
             "filtered page HTML", "filtered page + thumbnails (200)")
    timings: dict[str, list[float]] = {key: [] for key in kinds}
    cpu: dict[str, list[float]] = {key: [] for key in kinds}

    def record(kind: str, wall: float, cpu_time: float) -> None:
        timings[kind].append(wall)
        cpu[kind].append(cpu_time)

    etags: dict[str, str] = {}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for url_base, n_pages, prefix in ((base, pages, ""), (filtered, filtered_pages, "filtered ")):
            joiner = "&" if "?" in url_base else "?"
            for page in range(1, n_pages + 1):
                page_url = f"{url_base}{joiner}page={page}"
                _, html, html_ms = get(page_url)
                html_cpu = cpu_ms[page_url]
                urls = thumbnails_of(html)
                full, full_cpu = [], []
                for url in urls:
                    response, _, ms = get(url)
                    etags[url] = response["ETag"]
                    full.append(ms)
                    full_cpu.append(cpu_ms[url])
                    if not prefix:
                        record("one thumbnail (200)", ms, cpu_ms[url])
                record(f"{prefix}page HTML", html_ms, html_cpu)
                record(f"{prefix}page + thumbnails (200)", html_ms + sum(full), html_cpu + sum(full_cpu))
                if prefix:
                    continue
                revalidated, revalidated_cpu = [], []
                for url in urls:
                    ms = get(url, HTTP_IF_NONE_MATCH=etags[url])[2]
                    revalidated.append(ms)
                    revalidated_cpu.append(cpu_ms[url])
                    record("one thumbnail (304)", ms, cpu_ms[url])
                record("page + thumbnails (304)", html_ms + sum(revalidated), html_cpu + sum(revalidated_cpu))

    print(f"\n{count} images, {IMAGES_PER_PAGE} per page, {pages} pages ({filtered_pages} filtered: "
          f"diagnosis={diagnosis}, by P(synthetic)), {args.rounds} rounds; Django test client, SQLite, DEBUG off")
    print(f"load average before the timed rounds: {load:.2f} on {os.cpu_count()} cores (wall time includes waiting for a core)")
    print(f"{'request':<34}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'CPU p50':>9}{'CPU p95':>9}")
    for name, values in timings.items():
        print(f"{name:<34}{len(values):>6}{statistics.median(values):>9.1f}{percentile(values, 95):>9.1f}{max(values):>9.1f}"
              f"{statistics.median(cpu[name]):>9.1f}{percentile(cpu[name], 95):>9.1f}")
    worst = max(percentile(timings["page + thumbnails (200)"], 95), percentile(timings["filtered page + thumbnails (200)"], 95))
    verdict = "PASS" if worst < TARGET_MS else "FAIL"
    print(f"\ntarget: p95 of a page of thumbnails after the first view < {TARGET_MS:.0f} ms: {verdict} ({worst:.1f} ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
