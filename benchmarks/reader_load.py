"""Reader-study load: N readers reading concurrently against gunicorn + PostgreSQL on loopback.

Creates a fresh PostgreSQL database, seeds one open study (real JPEGs vs synthetic PNGs, repeated cases) with
N invited readers, starts gunicorn on 127.0.0.1, and lets every reader work through their cases as a browser
would: "next case" (the reading page, or the API's next endpoint), the case image, then "submit". A share of
answers is double-submitted (two identical POSTs at once). Reports p50/p95/max latency of "next case" and
"submit", and checks the database afterwards: no lost answer (a success response without a stored row), no
duplicate (two rows for one reader × case × showing), every showing answered once.

    .venv/bin/python benchmarks/reader_load.py [--readers 20] [--cases 40] [--mode web|api] [--think 0]
                                               [--duration 120]

Needs PostgreSQL on 127.0.0.1:5432 with trust auth (BENCH_POSTGRES_URL overrides the database URL).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so that `benchmarks._loadkit` imports however this file is started

from benchmarks._loadkit import (  # noqa: E402 - needs the path above
    Browser,
    free_port,
    process_group_cpu_seconds,
    recreate_database,
    start_gunicorn,
    stop_gunicorn,
    timed,
    wait_for_port,
)

PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/dermaudit_readerload")
PASSWORD = "load-test-password-1"
TOKEN_RE = re.compile(r'name="token" value="([^"]+)"')
IMAGE_RE = re.compile(r'<img src="([^"]+)"')
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def seed(n_readers: int, n_cases: int, image_size: int) -> dict:
    """Org, image sets, an open study and N readers with API tokens (runs in this process, on PG_URL)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from PIL import Image as PILImage
    from rest_framework.authtoken.models import Token

    from auditor.ingestion.importer import run_ingest
    from auditor.models import ImageSet, IngestJob, Membership, Organisation, Role
    from reader_study.models import ReaderProfile, Showing
    from reader_study.services import ArmSpec, StudyDesign, create_study, invite_readers, open_study

    org = Organisation.objects.create(name="Load clinic")
    rng = np.random.default_rng(0)
    folder = Path(os.environ["MEDIA_ROOT"]) / "sources"  # removed with the media folder at the end
    folder.mkdir()
    sets = {}
    for kind, fmt, size in (("reference", "JPEG", (640, 480)), ("generated", "PNG", (64, 64))):
        image_set = ImageSet.objects.create(organisation=org, name=kind, kind=kind)
        paths = []
        for i in range(n_cases // 2):
            pixels = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
            image = PILImage.fromarray(pixels).resize(size, PILImage.Resampling.BICUBIC)
            path = folder / f"{kind}_{i}.{fmt.lower()}"
            image.save(path, format=fmt)
            paths.append(path)
        run_ingest(IngestJob.objects.create(image_set=image_set, source="load", source_paths=[str(p) for p in paths]), paths)
        sets[kind] = image_set
    design = StudyDesign(name="load", arms=(ArmSpec(sets["generated"].pk, n_cases // 2), ArmSpec(sets["reference"].pk, n_cases // 2)),
                         repeat_fraction=0.1, image_size=image_size, seed=1)
    study = create_study(org, design)
    readers = []
    for i in range(n_readers):
        user = get_user_model().objects.create_user(username=f"reader-{i:02d}", password=PASSWORD)
        Membership.objects.create(user=user, organisation=org, role=Role.READER)
        ReaderProfile.objects.create(user=user, specialty="dermatology", years_experience=5 + i % 20, board_certified=True)
        readers.append(user)
    invite_readers(study, readers)
    open_study(study)
    return {
        "study": study.pk,
        "showings": Showing.objects.filter(assignment__study=study).count(),
        "readers": [{"username": u.username, "token": Token.objects.create(user=u).key,
                     "assignment": u.reader_assignments.get(study=study).pk} for u in readers],
    }


@dataclass
class Tally:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    image_ms: list[float] = field(default_factory=list)
    twin_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # tokens the server said it stored (or had stored)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, value) -> None:
        with self.lock:
            getattr(self, name).append(value)


def start_twin(tally: Tally, send) -> threading.Thread:
    """Send the same POST again from a second connection, at the same moment as the reader's own."""
    def run():
        try:
            (status, _), ms = timed(send)
            tally.add("twin_ms", ms)
            if status not in (200, 201, 302):
                tally.add("errors", f"double submit answered {status}")
        except Exception as exc:  # noqa: BLE001 - reported, not raised in a thread
            tally.add("errors", f"double submit failed: {exc!r}")
    thread = threading.Thread(target=run)
    thread.start()
    return thread


ANSWER = {"call": "synthetic", "confidence": "3", "quality": "4"}
THINK_SECONDS = 0.0  # set from --think


def think(rng: random.Random) -> None:
    if THINK_SECONDS:
        time.sleep(rng.uniform(0.5, 1.5) * THINK_SECONDS)


def read_web(port: int, reader: dict, study: int, tally: Tally, deadline: float, double_share: float, seed: int,
             start: threading.Barrier) -> None:
    rng = random.Random(seed)
    browser = Browser(port)
    status, page = browser.request("GET", "/login/")
    csrf = CSRF_RE.search(page.decode()).group(1)
    status, _ = browser.form_post("/login/", {"csrfmiddlewaretoken": csrf, "username": reader["username"], "password": PASSWORD})
    start.wait()  # logged in: everybody starts reading at once
    if status != 302:
        tally.add("errors", f"{reader['username']}: login {status}")
        return
    read_url = f"/studies/{study}/read/"
    while time.monotonic() < deadline:
        (status, page), ms = timed(lambda: browser.request("GET", read_url))
        tally.add("next_ms", ms)
        html = page.decode()
        token = TOKEN_RE.search(html)
        if status != 200 or token is None:
            if "All cases answered" not in html:
                tally.add("errors", f"{reader['username']}: next {status}")
            return
        (status, _), ms = timed(lambda: browser.request("GET", IMAGE_RE.search(html).group(1)))
        tally.add("image_ms", ms)
        think(rng)
        fields = {**ANSWER, "token": token.group(1), "csrfmiddlewaretoken": CSRF_RE.search(html).group(1)}
        twin = None
        if rng.random() < double_share:  # the same form sent twice at once (double click, flaky network)
            other = Browser(port)
            other.cookies = dict(browser.cookies)
            twin = start_twin(tally, lambda: other.form_post(read_url, fields))
        (status, _), ms = timed(lambda: browser.form_post(read_url, fields))
        if twin:
            twin.join()
        tally.add("submit_ms", ms)
        if status == 302:
            tally.add("accepted", fields["token"])
        else:
            tally.add("errors", f"{reader['username']}: submit {status}")


def read_api(port: int, reader: dict, study: int, tally: Tally, deadline: float, double_share: float, seed: int,
             start: threading.Barrier) -> None:
    rng = random.Random(seed)
    auth = {"Authorization": f"Token {reader['token']}"}
    client = Browser(port, auth)
    body = json.dumps({"call": "real", "confidence": 2, "quality": 3}).encode()
    json_headers = {"Content-Type": "application/json"}
    client.request("GET", "/api/reader/assignments/")  # untimed: open the connection, like the reader's home page
    start.wait()
    while time.monotonic() < deadline:
        (status, data), ms = timed(lambda: client.request("GET", f"/api/reader/assignments/{reader['assignment']}/next/"))
        tally.add("next_ms", ms)
        case = json.loads(data).get("case") if status == 200 else None
        if case is None:
            if status != 200:
                tally.add("errors", f"{reader['username']}: next {status}")
            return
        (status, _), ms = timed(lambda: client.request("GET", case["image_url"]))
        tally.add("image_ms", ms)
        think(rng)
        url = f"/api/reader/cases/{case['token']}/answer/"
        twin = None
        if rng.random() < double_share:
            other = Browser(port, auth)
            twin = start_twin(tally, lambda: other.request("POST", url, body, json_headers))
        (status, _), ms = timed(lambda: client.request("POST", url, body, json_headers))
        if twin:
            twin.join()
        tally.add("submit_ms", ms)
        if status in (200, 201):
            tally.add("accepted", case["token"])
        else:
            tally.add("errors", f"{reader['username']}: submit {status}")


def percentiles(values: list[float]) -> str:
    if not values:
        return "n=0"
    a = np.asarray(values)
    return f"n={a.size:5d}  p50={np.percentile(a, 50):7.1f} ms  p95={np.percentile(a, 95):7.1f} ms  max={a.max():7.1f} ms"


def check_database(study_id: int, accepted: list[str]) -> dict:
    from django.db import connection
    from django.db.models import Count

    from reader_study.models import Answer, Showing

    connection.close()
    stored = set(Answer.objects.filter(showing__assignment__study_id=study_id).values_list("showing__token", flat=True))
    per_triple = (Answer.objects.filter(showing__assignment__study_id=study_id)
                  .values("showing__assignment__reader", "showing__case", "showing__number")
                  .annotate(n=Count("id")).filter(n__gt=1).count())
    return {
        "answers": len(stored),
        "showings": Showing.objects.filter(assignment__study_id=study_id).count(),
        "unanswered": Showing.objects.filter(assignment__study_id=study_id, answer__isnull=True).count(),
        "lost": len(set(accepted) - stored),
        "duplicates": per_triple,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=40, help="half real, half synthetic; 10%% are shown twice")
    parser.add_argument("--mode", choices=["web", "api"], default="web", help="reading pages (default) or the JSON API")
    parser.add_argument("--duration", type=float, default=120, help="hard limit on the reading phase, seconds")
    parser.add_argument("--double-submit", type=float, default=0.2, help="share of answers posted twice at once")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds a reader looks at each case before answering (0: back-to-back, a stress test)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=512)
    args = parser.parse_args()
    global THINK_SECONDS
    THINK_SECONDS = args.think

    media = Path(tempfile.mkdtemp(prefix="reader-load-media-"))
    env = {**os.environ, "DATABASE_URL": PG_URL, "MEDIA_ROOT": str(media), "DJANGO_SETTINGS_MODULE": "auditor.settings",
           "DJANGO_SECRET_KEY": "reader-load-benchmark-" + "k" * 40, "DJANGO_DEBUG": "0",
           "DJANGO_SECURE_SSL_REDIRECT": "0", "DERMAUDIT_LOG_LEVEL": "ERROR"}
    os.environ.update(env)
    recreate_database(PG_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    t0 = time.perf_counter()
    seeded = seed(args.readers, args.cases, args.image_size)
    print(f"seeded {args.readers} readers × {seeded['showings'] // args.readers} showings in {time.perf_counter() - t0:.1f} s")

    port = free_port()
    server = start_gunicorn(port, env, media, workers=args.workers, worker_class="gthread", threads=args.threads)
    try:
        wait_for_port(port)
        load_before = os.getloadavg()
        tally = Tally()
        reader_fn = read_web if args.mode == "web" else read_api
        deadline = time.monotonic() + args.duration
        mark: dict[str, float] = {}

        def reading_starts() -> None:  # runs once all readers are logged in: logins (password hashing) not counted
            mark["cpu"], mark["time"] = process_group_cpu_seconds(server.pid), time.perf_counter()

        barrier = threading.Barrier(len(seeded["readers"]), action=reading_starts)
        threads = [threading.Thread(target=reader_fn,
                                    args=(port, r, seeded["study"], tally, deadline, args.double_submit, i, barrier))
                   for i, r in enumerate(seeded["readers"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - mark["time"]
        server_cpu = process_group_cpu_seconds(server.pid) - mark["cpu"]
    finally:
        stop_gunicorn(server)
        shutil.rmtree(media, ignore_errors=True)

    result = check_database(seeded["study"], tally.accepted)
    print(f"mode={args.mode} readers={args.readers} think={args.think} s gunicorn {args.workers}×{args.threads} threads; "
          f"reading phase {wall:.1f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"next case : {percentiles(tally.next_ms)}")
    print(f"submit    : {percentiles(tally.submit_ms)}")
    print(f"image     : {percentiles(tally.image_ms)}")
    print(f"2nd submit: {percentiles(tally.twin_ms)}  (the duplicate of a double submit)")
    requests = len(tally.next_ms) + len(tally.submit_ms) + len(tally.image_ms) + len(tally.twin_ms)
    print(f"throughput {requests / wall:.1f} requests/s; gunicorn CPU {1000 * server_cpu / max(requests, 1):.1f} ms per "
          "request (PostgreSQL's own CPU not included)")
    print(f"answers stored {result['answers']} of {result['showings']} showings; unanswered {result['unanswered']}; "
          f"lost {result['lost']}; duplicates {result['duplicates']}; client errors {len(tally.errors)}")
    for error in tally.errors[:10]:
        print("  error:", error)
    p95_ok = tally.submit_ms and np.percentile(tally.next_ms, 95) < 150 and np.percentile(tally.submit_ms, 95) < 150
    print("target p95 < 150 ms:", "met" if p95_ok else "NOT met")
    return 0 if result["lost"] == 0 and result["duplicates"] == 0 and not tally.errors else 1


if __name__ == "__main__":
    sys.exit(main())
