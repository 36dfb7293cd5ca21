"""API load: 50 token-authenticated API clients and 20 readers at once against gunicorn + PostgreSQL on loopback.

Creates a fresh PostgreSQL database and seeds it in this process: one organisation; real images from ../shared/data,
by path (200 isic-uda1 images as the reference set, 120 PAD-UFES-20 clinical photos as the "generated" set, and
--extra-sets sets of 10 images); one finished audit of those two sets with its results and report (Celery eager;
by default without a baseline set, so without the detector and Grad-CAM stages, which take minutes on 2 shared cores;
--with-detector adds them in tests/auditor/audits/test_pipeline.py's fast configuration); an open reader study on the
same two sets with the readers invited. Then starts gunicorn on 127.0.0.1 and, for --duration seconds, runs:

- --clients API clients (developer role, `Authorization: Token …`), each in a loop: "list sets" (with or without a
  kind filter), "set detail", "audit results" or "report JSON", at random, then a pause (uniform 0.5–1.5 × --think);
- --readers readers answering cases: reader_load.py's own API flow (next case, image, answer; --double-submit of the
  answers posted twice at once), with --reader-think seconds per case.

Prints per endpoint group requests, throughput, p50/p95/p99 latency and errors (status outside 2xx/3xx, or no
response), an overall row, and the target "zero errors, p95 < 200 ms" (in every group and overall) as PASS/FAIL; then
checks the database: no reader answer lost (a success response without a stored row), none duplicated. Exit status 0
only when both hold. The database, the temporary media folder and gunicorn are removed at exit, Ctrl-C included.

gunicorn: gthread, 3 processes × 4 threads. A request is Python CPU work plus waits on PostgreSQL: on 2 cores three
processes keep both busy while one waits, threads overlap the waits and keep the 70 clients' connections alive
(sync workers close the connection after every response). Measured (10 clients + 4 readers, 20 s, machine shared,
load average ~4): gthread 3×4 p50 21.5 ms, p95 58.7 ms, 8.2 ms gunicorn CPU per request; sync ×4 p50 43.0 ms,
p95 99.2 ms, 9.9 ms per request. `--worker-class sync --workers 4` repeats the comparison.

The full run (seeding takes 1–2 minutes, most of it the audit):

    .venv/bin/python benchmarks/api_load.py --duration 60 --clients 50 --readers 20

A short check: `.venv/bin/python benchmarks/api_load.py --duration 10 --clients 10 --readers 4`.
Needs PostgreSQL on 127.0.0.1:5432 with trust auth (API_LOAD_POSTGRES_URL overrides the database URL; that database
is dropped and re-created) and ../shared/data (DERMAUDIT_SHARED_DATA overrides).
"""
from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so that `benchmarks.*` imports however this file is started

from benchmarks import reader_load  # noqa: E402 - needs the path above
from benchmarks._loadkit import (  # noqa: E402
    Browser,
    drop_database,
    free_port,
    observe_requests,
    process_group_cpu_seconds,
    recreate_database,
    start_gunicorn,
    stop_gunicorn,
    wait_for_port,
)

SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))
PG_URL = os.environ.get("API_LOAD_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/dermaudit_apiload")
TARGET_P95_MS = 200.0

# Endpoint groups, matched on method and path in this order.
GROUPS = [
    ("sets: list", "GET", re.compile(r"^/api/image-sets/(\?.*)?$")),
    ("sets: detail", "GET", re.compile(r"^/api/image-sets/\d+/$")),
    ("audit: results", "GET", re.compile(r"^/api/audits/\d+/results/$")),
    ("report: JSON", "GET", re.compile(r"^/api/reports/[^/]+/json/$")),
    ("reader: next case", "GET", re.compile(r"^/api/reader/assignments/\d+/next/$")),
    ("reader: image", "GET", re.compile(r"^/api/reader/cases/[^/]+/image/$")),
    ("reader: answer", "POST", re.compile(r"^/api/reader/cases/[^/]+/answer/$")),
]


def group_of(method: str, path: str) -> str:
    for name, group_method, pattern in GROUPS:
        if method == group_method and pattern.match(path):
            return name
    return f"other: {method} {path.split('?')[0]}"


class Recorder:
    """Every request any Browser makes while the measurement runs: latency and outcome per endpoint group."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.examples: list[str] = []
        self.active = False

    def observe(self, method: str, path: str, status: int | None, ms: float, exc: BaseException | None) -> None:
        if not self.active:
            return
        group = group_of(method, path)
        failed = exc is not None or not 200 <= status < 400
        with self.lock:
            self.latencies[group].append(ms)
            if failed:
                self.errors[group] += 1
                if len(self.examples) < 10:
                    self.examples.append(f"{method} {path}: {exc!r}" if exc is not None else f"{method} {path}: {status}")

    def flow_error(self, who: str, exc: BaseException) -> None:
        with self.lock:
            self.errors["(client code)"] += 1
            if len(self.examples) < 20:
                self.examples.append(f"{who}: {exc!r}")


def labelled_paths(dataset: str, rows: slice) -> list[Path]:
    """The dataset's labels.csv (so that the rows get their labels) and the image files of the chosen rows."""
    folder = SHARED / dataset
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise SystemExit(f"{labels}: not found (set DERMAUDIT_SHARED_DATA to the folder holding {dataset}/)")
    files = [folder / line.split(",", 1)[0] for line in labels.read_text().splitlines()[1:]][rows]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]}: listed in {labels} but not found")
    return [labels, *files]


def seed(n_clients: int, n_readers: int, n_cases: int, extra_sets: int, with_detector: bool) -> dict:
    """Organisation, image sets, a finished audit with its report, an open study; API and reader tokens."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from auditor.audits import pipeline
    from auditor.generation.runs import sample_to_image_set, train_generator
    from auditor.ingestion.importer import run_ingest
    from auditor.models import Audit, GeneratorRun, ImageSet, IngestJob, Membership, Organisation, Report, Role
    from auditor.audits.tasks import run_audit_task
    from reader_study.models import ReaderProfile, Showing
    from reader_study.services import ArmSpec, StudyDesign, create_study, invite_readers, open_study

    users = get_user_model().objects
    org = Organisation.objects.create(name="API load clinic")
    quality = users.create_user(username="load-quality")  # no password: nobody logs in, and hashing costs ~0.7 s
    Membership.objects.create(user=quality, organisation=org, role=Role.QUALITY)

    def import_set(name: str, kind: str, dataset: str, rows: slice) -> ImageSet:
        image_set = ImageSet.objects.create(organisation=org, name=name, kind=kind, created_by=quality)
        sources = labelled_paths(dataset, rows)
        job = run_ingest(IngestJob.objects.create(image_set=image_set, source="api-load", source_paths=[str(p) for p in sources]),
                         sources)
        if job.status != IngestJob.Status.SUCCEEDED or not job.imported:
            raise SystemExit(f"seeding {name!r} from {dataset}: import {job.status}, {job.imported} imported: {job.message}")
        return image_set

    t0 = time.perf_counter()
    reference = import_set("isic-uda1 (200)", ImageSet.Kind.REFERENCE, "isic-uda1", slice(0, 200))
    generated = import_set("pad-ufes-20 as generated (120)", ImageSet.Kind.GENERATED, "pad-ufes-20", slice(0, 120))
    for i in range(extra_sets):  # smaller sets, so that the list is a realistic page (10 images each, not audited)
        dataset, kind, first = (("isic-uda1", ImageSet.Kind.REFERENCE, 200) if i % 2 else
                                ("pad-ufes-20", ImageSet.Kind.GENERATED, 120))
        start = first + 10 * (i // 2)
        import_set(f"{dataset} batch {i // 2}", kind, dataset, slice(start, start + 10))
    t_import = time.perf_counter() - t0
    print(f"seeding: image sets imported in {t_import:.1f} s; now the audit", flush=True)

    baseline = None
    if with_detector:  # tests/auditor/audits/test_pipeline.py's fast configuration; the detector stages take minutes
        run = GeneratorRun.objects.create(organisation=org, kind="dcgan", reference_set=reference, max_steps=2, seed=1,
                                          config={"image_size": 32, "batch_size": 16, "ngf": 8, "ndf": 8, "z_dim": 16})
        baseline = sample_to_image_set(train_generator(run), 60, seed=2)
    audit = Audit.objects.create(organisation=org, name="load audit", created_by=quality, generated_set=generated,
                                 reference_set=reference, baseline_set=baseline, include_copy_baseline=True)
    pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))  # eager: runs here, now
    audit.refresh_from_db()
    if audit.status != Audit.Status.SUCCEEDED:
        raise SystemExit(f"seeding: the audit {audit.status}: {audit.error}")
    report = Report.objects.get(audit=audit)
    t_audit = time.perf_counter() - t0 - t_import

    clients = []
    for i in range(n_clients):
        user = users.create_user(username=f"developer-{i:02d}")
        Membership.objects.create(user=user, organisation=org, role=Role.DEVELOPER)
        clients.append(Token.objects.create(user=user).key)
    readers = []
    for i in range(n_readers):
        user = users.create_user(username=f"reader-{i:02d}")
        Membership.objects.create(user=user, organisation=org, role=Role.READER)
        ReaderProfile.objects.create(user=user, specialty="dermatology", years_experience=5 + i % 20, board_certified=True)
        readers.append(user)
    design = StudyDesign(name="load", arms=(ArmSpec(generated.pk, n_cases // 2), ArmSpec(reference.pk, n_cases - n_cases // 2)),
                         repeat_fraction=0.1, image_size=512, seed=1)
    study = create_study(org, design)
    invite_readers(study, readers)
    open_study(study)
    return {
        "set_ids": list(ImageSet.objects.filter(organisation=org).values_list("pk", flat=True)),
        "images": sum(s.images.count() for s in ImageSet.objects.filter(organisation=org)),
        "audit": audit.pk, "report": str(report.pk), "clients": clients, "study": study.pk,
        "showings": Showing.objects.filter(assignment__study=study).count(),
        "readers": [{"username": u.username, "token": Token.objects.create(user=u).key,
                     "assignment": u.reader_assignments.get(study=study).pk} for u in readers],
        "seconds": {"import": t_import, "audit": t_audit, "rest": time.perf_counter() - t0 - t_import - t_audit},
    }


def api_client(port: int, token: str, seeded: dict, deadline: float, think: float, seed_: int,
               start: threading.Barrier) -> None:
    rng = random.Random(seed_)
    client = Browser(port, {"Authorization": f"Token {token}", "Accept": "application/json"})
    client.request("GET", "/api/image-sets/?kind=baseline")  # untimed: open the connection
    start.wait()
    while time.monotonic() < deadline:
        choice = rng.randrange(4)
        if choice == 0:
            path = "/api/image-sets/" + rng.choice(["", "?kind=reference", "?kind=generated"])
        elif choice == 1:
            path = f"/api/image-sets/{rng.choice(seeded['set_ids'])}/"
        elif choice == 2:
            path = f"/api/audits/{seeded['audit']}/results/"
        else:
            path = f"/api/reports/{seeded['report']}/json/"
        try:
            client.request("GET", path)  # the recorder sees status and latency
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)  # recorded as an error; do not spin on a dead server
        if think:
            time.sleep(rng.uniform(0.5, 1.5) * think)


def guarded(target, recorder: Recorder, who: str, start: threading.Barrier, *args) -> threading.Thread:
    """A daemon thread running target(*args); an exception is counted, and before the start it calls the run off."""
    def run():
        try:
            target(*args)
        except threading.BrokenBarrierError:
            pass  # another client failed before the start; that one reports why
        except Exception as exc:  # noqa: BLE001 - counted and printed, not raised in a thread
            recorder.flow_error(who, exc)
            start.abort()  # harmless once started; before, it stops everybody waiting at the start line
    return threading.Thread(target=run, daemon=True)


def percentile_row(name: str, values: list[float], errors: int, wall: float) -> str:
    a = np.asarray(values) if values else np.zeros(1)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return f"{name:<20} {len(values):>8} {len(values) / wall:>8.1f} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {errors:>7}"


def warm_up(port: int, seeded: dict, connections: int) -> None:
    """Each worker serves every endpoint once before the clock starts (first requests import and connect; not recorded)."""
    paths = ["/api/image-sets/", f"/api/image-sets/{seeded['set_ids'][0]}/", f"/api/audits/{seeded['audit']}/results/",
             f"/api/reports/{seeded['report']}/json/"]

    def visit(i: int) -> None:
        client = Browser(port, {"Authorization": f"Token {seeded['clients'][i % len(seeded['clients'])]}"})
        for path in paths:
            client.request("GET", path)
        if seeded["readers"]:
            reader = seeded["readers"][i % len(seeded["readers"])]
            Browser(port, {"Authorization": f"Token {reader['token']}"}).request("GET", "/api/reader/assignments/")

    threads = [threading.Thread(target=visit, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def run_load(args, seeded: dict, port: int, server: subprocess.Popen, recorder: Recorder) -> dict:
    """API clients and readers together for --duration seconds; returns what the report needs."""
    reader_load.THINK_SECONDS = args.reader_think  # read_api's pause per case
    tally = reader_load.Tally()
    mark: dict[str, float] = {}

    def load_starts() -> None:  # runs once every client has its connection open
        mark["cpu"], mark["time"] = process_group_cpu_seconds(server.pid), time.perf_counter()
        recorder.active = True

    barrier = threading.Barrier(args.clients + args.readers, action=load_starts, timeout=120)
    load_before = os.getloadavg()
    deadline = time.monotonic() + args.duration
    threads = [guarded(api_client, recorder, f"client {i}", barrier, port, token, seeded, deadline, args.think, i, barrier)
               for i, token in enumerate(seeded["clients"])]
    threads += [guarded(reader_load.read_api, recorder, r["username"], barrier, port, r, seeded["study"], tally, deadline,
                        args.double_submit, 1000 + i, barrier) for i, r in enumerate(seeded["readers"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 60)  # a request times out after 30 s
    recorder.active = False
    if "time" not in mark:
        raise SystemExit("the load never started: " + "; ".join(recorder.examples))
    return {"tally": tally, "wall": time.perf_counter() - mark["time"], "load_before": load_before,
            "server_cpu": process_group_cpu_seconds(server.pid) - mark["cpu"],
            "still_running": sum(t.is_alive() for t in threads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (a reader who has answered every "
                        "case stops earlier)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent API clients")
    parser.add_argument("--readers", type=int, default=20, help="concurrent readers")
    parser.add_argument("--cases", type=int, default=120, help="cases per reader (10%% more are repeats)")
    parser.add_argument("--think", type=float, default=0.5, help="API clients' mean pause between requests, seconds")
    parser.add_argument("--reader-think", type=float, default=1.0, help="readers' mean time per case, seconds")
    parser.add_argument("--double-submit", type=float, default=0.2, help="share of answers posted twice at once")
    parser.add_argument("--extra-sets", type=int, default=20, help="small image sets besides the two audited ones (<= 58)")
    parser.add_argument("--with-detector", action="store_true",
                        help="seed the audit with a baseline set, so that it trains a detector and explains it (minutes more)")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="DJANGO_CONN_MAX_AGE for gunicorn (the README's production setting; 0: a connection per request)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    args = parser.parse_args()
    if args.clients < 1 or args.readers < 0 or not 0 <= args.extra_sets <= 58 or not 2 <= args.cases <= 240:
        parser.error("need --clients >= 1, --readers >= 0, --extra-sets 0..58 and --cases 2..240 (the seed's image counts)")

    media = Path(tempfile.mkdtemp(prefix="api-load-"))
    env = {**os.environ, "DATABASE_URL": PG_URL, "MEDIA_ROOT": str(media / "media"), "DERMAUDIT_VAR_DIR": str(media / "var"),
           "DERMAUDIT_MODEL_DIR": str(media / "models"), "DERMAUDIT_FEATURE_CACHE": str(media / "features"),
           "DERMAUDIT_CROSSFIT_EPOCHS": "1", "DERMAUDIT_ROAD_IMAGES": "8",
           "DJANGO_SETTINGS_MODULE": "auditor.settings", "DJANGO_SECRET_KEY": "api-load-benchmark-" + "k" * 40,
           "DJANGO_DEBUG": "0", "DJANGO_SECURE_SSL_REDIRECT": "0", "DERMAUDIT_LOG_LEVEL": "ERROR",
           "DJANGO_CONN_MAX_AGE": str(args.conn_max_age)}
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):  # eager Celery: the seeding audit runs here
        env.pop(name, None)
        os.environ.pop(name, None)
    os.environ.update(env)
    # Ctrl-C and `kill` clean up alike, also when started in the background (where a shell ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    recorder, server = Recorder(), None
    try:
        recreate_database(PG_URL)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
        seeded = seed(args.clients, args.readers, args.cases, args.extra_sets, args.with_detector)
        s = seeded["seconds"]
        print(f"seeded {len(seeded['set_ids'])} image sets ({seeded['images']} images) in {s['import']:.1f} s, "
              f"a finished audit with its report in {s['audit']:.1f} s"
              f"{' (detector and Grad-CAM included)' if args.with_detector else ' (no baseline set: no detector stages)'}, "
              f"{args.clients} API users and a study of {seeded['showings'] // max(args.readers, 1)} showings × "
              f"{args.readers} readers in {s['rest']:.1f} s", flush=True)

        port = free_port()
        server = start_gunicorn(port, env, media, workers=args.workers, worker_class=args.worker_class, threads=args.threads)
        if not wait_for_port(port, attempts=300, server=server):
            raise SystemExit("gunicorn did not start (its output is above)")
        warm_up(port, seeded, connections=2 * args.workers * (args.threads if args.worker_class == "gthread" else 1))
        observe_requests(recorder.observe)
        measured = run_load(args, seeded, port, server, recorder)
        stop_gunicorn(server)
        server = None
        integrity = reader_load.check_database(seeded["study"], measured["tally"].accepted)
        return report(args, recorder, measured, integrity)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the database behind
        observe_requests(None)
        if server is not None:
            stop_gunicorn(server)
        cleanup_database()
        shutil.rmtree(media, ignore_errors=True)
        print(f"cleaned up: gunicorn stopped (if started), database {PG_URL.rsplit('/', 1)[1]} dropped, {media} removed")


def cleanup_database() -> None:
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - Django may never have been set up
        pass
    drop_database(PG_URL)


def report(args, recorder: Recorder, measured: dict, integrity: dict) -> int:
    wall, load_before = measured["wall"], measured["load_before"]
    print(f"\n{args.clients} API clients (think {args.think} s) + {args.readers} readers (think {args.reader_think} s per "
          f"case, {args.double_submit:.0%} double submits); DJANGO_CONN_MAX_AGE {args.conn_max_age}; gunicorn {args.worker_class} {args.workers} workers"
          + (f" × {args.threads} threads" if args.worker_class == "gthread" else "")
          + f"; measured {wall:.1f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'group':<20} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    names = [g[0] for g in GROUPS] + sorted(set(recorder.latencies) - {g[0] for g in GROUPS})
    p95s = []
    for name in names:
        values = recorder.latencies.get(name, [])
        if values:
            print(percentile_row(name, values, recorder.errors[name], wall))
            p95s.append(float(np.percentile(values, 95)))
    everything = [v for values in recorder.latencies.values() for v in values]
    errors = sum(recorder.errors.values())
    print(percentile_row("overall", everything, errors, wall))
    if everything:
        p95s.append(float(np.percentile(everything, 95)))
    print(f"gunicorn CPU {1000 * measured['server_cpu'] / max(len(everything), 1):.1f} ms per request "
          "(PostgreSQL's own not included)")
    if measured["still_running"]:
        print(f"  {measured['still_running']} clients had not finished 60 s after the deadline")
    for example in recorder.examples:
        print("  error:", example)
    print(f"reader answers: {integrity['answers']} stored of {integrity['showings']} showings "
          f"({integrity['unanswered']} unanswered at the end); lost {integrity['lost']}; duplicated {integrity['duplicates']}")
    passed = errors == 0 and bool(everything) and max(p95s) < TARGET_P95_MS
    worst = max(p95s) if p95s else float("nan")
    print(f"target: zero errors, p95 < {TARGET_P95_MS:.0f} ms in every group: {'PASS' if passed else 'FAIL'} "
          f"({errors} errors, worst p95 {worst:.1f} ms)")
    intact = integrity["lost"] == 0 and integrity["duplicates"] == 0
    print(f"answers: no loss, no duplicate: {'PASS' if intact else 'FAIL'}")
    return 0 if passed and intact else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; main() has cleaned up
        print("interrupted", file=sys.stderr)
        sys.exit(130)
