"""Audit wall time against the number of worker processes (1, 2, 4): PostgreSQL + Redis, one fresh database each.

    .venv/bin/python benchmarks/scale.py --images 2000 --workers 1 2 4

Generated images: --images re-encoded JPEG crops/flips of ../shared/data images (benchmarks/ingest.py's build_zip);
reference: ../shared/data/isic-uda1 (557 images; --reference-images N takes the first N for a quick check).
Set-up, not timed: the detector is trained once beforehand (reference vs generated, --detector-minutes) and every
run's audit uses that same checkpoint, so detector training is not in the timing; each run then gets a fresh
PostgreSQL database, media folder and feature cache (nothing cached from an earlier run), imports both sets, and
starts its workers: `celery worker --pool=solo` processes (one process each, so wait4's peak RSS is the whole
worker), on their own Redis queue. Threads as the README's topology says: each worker's chunk work uses
DERMAUDIT_CHUNK_THREADS = max(1, cores ÷ workers) torch threads, the set-level stages one (--threads N instead
pins every worker to N threads with OMP_NUM_THREADS). The stored numbers must not depend on any of this: features
are bit-identical at any batch size and thread count, and the set-level stages run at one torch and one BLAS thread
on every deployment (issue #18). Each row says whether its numbers are identical to the first row's.
Timed: from queueing the audit to "succeeded" (the audit's own locked_at → finished_at): per-image chunks (features,
phototype estimates; 64 images each, shared by the workers) then the set-level stages (fidelity, phototype balance,
memorisation, detector evaluation, Grad-CAM + ROAD, report), which run in one worker: expect the speed-up of the
chunk stage ("chunks s"), not of the whole audit. Peak RSS: the sum over the run's workers (an upper bound of their
joint peak). The stored numbers of every stage must be identical across worker counts; the script says so and
exits with status 1 when they are not.

Needs PostgreSQL and Redis on loopback: BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/dermaudit_scale; one
database per run is made beside it, suffixed _w1, _w2, …), BENCH_REDIS_URL (redis://127.0.0.1:6379/0; nothing is
flushed: the queues are named per run). A quick check of the script itself:

    .venv/bin/python benchmarks/scale.py --images 200 --workers 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SHARED, build_zip  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/dermaudit_scale")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ORG = "Scale benchmark"

# Runs inside one run's environment: makes the audit (with the shared pre-trained detector), queues it, waits.
_CHILD = r"""
import hashlib, json, sys, time
import django
django.setup()
from collections import Counter
from auditor.audits import pipeline
from auditor.models import Audit, DetectorRun, ImageSet, Organisation
from auditor.audits.tasks import run_audit_task

detector_fields = json.loads(sys.argv[1])
org = Organisation.objects.get(name=%(org)r)
reference, generated = ImageSet.objects.get(organisation=org, name="reference"), ImageSet.objects.get(organisation=org, name="generated")
detector = DetectorRun.objects.create(organisation=org, reference_set=reference, **detector_fields)
detector.synthetic_sets.set([generated])
audit = Audit.objects.create(organisation=org, name="scale", generated_set=generated, reference_set=reference,
                             detector=detector, include_copy_baseline=True)
pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
while Audit.objects.filter(pk=audit.pk, status__in=["queued", "running"]).exists():
    time.sleep(0.5)
audit.refresh_from_db()

def comparable(value):
    if isinstance(value, dict):
        # What legitimately differs between two audits: timings, file paths, row ids, checkpoint files (they hold
        # training wall times; the weights' own hash, weights_sha256, is compared).
        return {k: comparable(v) for k, v in value.items()
                if k not in {"timings_s", "seconds_per_image", "seconds", "wall_s", "path", "detector_run", "sha256"}}
    return [comparable(v) for v in value] if isinstance(value, list) else value

chunks = list(audit.chunks.all())
digests = {r.stage: hashlib.sha256(json.dumps(comparable(r.data), sort_keys=True).encode()).hexdigest()
           for r in audit.results.exclude(stage="report")}
print("RESULT " + json.dumps({
    "status": audit.status, "error": audit.error, "generated": generated.images.count(), "reference": reference.images.count(),
    "wall_s": (audit.finished_at - audit.locked_at).total_seconds(),
    "chunks_s": (max(c.finished_at for c in chunks) - audit.locked_at).total_seconds(),
    "chunks_per_worker": dict(Counter(c.worker.split("@")[0] for c in chunks)), "digests": digests,
}))
"""

# Prints the trained detector's row as JSON, for the runs' databases (same checkpoint file, same held-out split).
_DETECTOR_FIELDS = (
    "import json; from auditor.models import DetectorRun; run = DetectorRun.objects.get(status='succeeded'); "
    "print('DETECTOR ' + json.dumps({k: getattr(run, k) for k in "
    "('status', 'checkpoint', 'checkpoint_sha256', 'evaluation', 'config', 'seed', 'max_seconds')}))"
)


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args[:2])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def fresh_database(url: str) -> None:
    admin, name = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
    for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True, capture_output=True)


def drop_database(url: str) -> None:
    admin, name = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def reference_folder(tmp: Path, n: int | None) -> Path:
    source = SHARED / "isic-uda1"
    if n is None:
        return source
    folder = tmp / "reference"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = (source / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join([lines[0], *lines[1 : n + 1]]) + "\n")
    for line in lines[1 : n + 1]:
        name = line.split(",")[0]
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


def run_env(tmp: Path, name: str, database_url: str, threads: int, workers: int = 1) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "MEDIA_ROOT", "DERMAUDIT_"))}
    env.update(DJANGO_SETTINGS_MODULE="auditor.settings", DATABASE_URL=database_url, DERMAUDIT_VAR_DIR=str(tmp / name),
               MEDIA_ROOT=str(tmp / name / "media"), DERMAUDIT_FEATURE_CACHE=str(tmp / name / "features"),
               DERMAUDIT_MODEL_DIR=str(tmp / "models"), PYTHONUNBUFFERED="1",
               DERMAUDIT_CHUNK_THREADS=str(threads or max(1, (os.cpu_count() or 1) // workers)))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def import_sets(env: dict, reference: Path, zip_path: Path) -> None:
    manage(env, "migrate", "-v0")
    manage(env, "import_images", str(reference), "--set", "reference", "--kind", "reference", "--organisation", ORG)
    manage(env, "import_images", str(zip_path), "--set", "generated", "--kind", "generated", "--organisation", ORG)


def start_workers(env: dict, n: int, logs: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        with open(logs / f"worker{i}.log", "wb") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "auditor", "worker", "-Q", env["DERMAUDIT_QUEUE"], "-n", f"w{i}@%h",
                 "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 180
    while not all(" ready." in (logs / f"worker{i}.log").read_text(errors="replace") for i in range(n)):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            stop_workers(workers)
            raise RuntimeError("workers did not start:\n" + (logs / "worker0.log").read_text(errors="replace")[-3000:])
        time.sleep(0.5)
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> float:
    """Warm shutdown; the sum of the workers' peak RSS in MiB."""
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    return sum(os.wait4(worker.pid, 0)[2].ru_maxrss / 1024 for worker in workers)


def run_audit(env: dict, detector: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD % {"org": ORG}, json.dumps(detector)], cwd=REPO, env=env,
                            capture_output=True, text=True)
    line = next((out for out in result.stdout.splitlines() if out.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"audit process failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="generated images")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reference-images", type=int, default=None, help="first N of isic-uda1 (default: all 557)")
    parser.add_argument("--detector-minutes", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per worker (OMP_NUM_THREADS); 0: chunk threads = cores ÷ workers")
    args = parser.parse_args()

    rows = []
    databases = [f"{PG_URL}_prepare"] + [f"{PG_URL}_w{n}" for n in args.workers]
    with tempfile.TemporaryDirectory(prefix="dermaudit-scale-") as tmp_name:
        try:
            run_all(args, Path(tmp_name), rows)
        finally:
            for url in databases:
                drop_database(url)
    report(args, rows)


def run_all(args, tmp: Path, rows: list) -> None:
    zip_path = tmp / "generated.zip"
    build_zip(zip_path, args.images)
    reference = reference_folder(tmp, args.reference_images)

    started = time.perf_counter()
    prepare = run_env(tmp, "prepare", f"{PG_URL}_prepare", args.threads)
    fresh_database(prepare["DATABASE_URL"])
    import_sets(prepare, reference, zip_path)
    manage(prepare, "train_detector", "--reference", "reference", "--synthetic", "generated",
           "--minutes", str(args.detector_minutes), "--seed", "1")
    detector_line = next(out for out in manage(prepare, "shell", "-c", _DETECTOR_FIELDS).splitlines()
                         if out.startswith("DETECTOR "))
    detector = json.loads(detector_line[len("DETECTOR "):])
    print(f"detector trained beforehand ({time.perf_counter() - started:.0f} s with the imports; not timed)", flush=True)

    for n in args.workers:
        env = run_env(tmp, f"w{n}", f"{PG_URL}_w{n}", args.threads, n)
        env.update(CELERY_BROKER_URL=REDIS_URL, DERMAUDIT_QUEUE=f"scale-{os.getpid()}-w{n}")
        fresh_database(env["DATABASE_URL"])
        import_sets(env, reference, zip_path)
        workers = start_workers(env, n, Path(env["DERMAUDIT_VAR_DIR"]))
        try:
            result = run_audit(env, detector)
        finally:
            peak = stop_workers(workers)
        if result["status"] != "succeeded":
            raise SystemExit(f"{n} workers: audit failed: {result['error']}")
        rows.append((n, result, peak))
        print(f"{n} workers: {result['wall_s']:.1f} s (chunks {result['chunks_s']:.1f} s), peak RSS sum {peak:.0f} MiB, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)


def report(args, rows: list) -> None:
    one = next((r for n, r, _ in rows if n == 1), rows[0][1])
    print(f"\nAudit of {one['generated']} generated vs {one['reference']} reference images (isic-uda1; an import keeps "
          "each picture once), "
          f"PostgreSQL + Redis, pre-trained detector, {f'{args.threads} torch thread(s) per worker' if args.threads else 'chunk threads = cores ÷ workers'}, {os.cpu_count()} CPUs")
    print("| workers | wall s | speed-up vs 1 | chunks s | chunk speed-up | chunks per worker | peak RSS sum | identical |")
    print("|---|---|---|---|---|---|---|---|")
    first = rows[0][1]["digests"]
    for n, result, peak in rows:
        per_worker = ", ".join(f"{name}: {count}" for name, count in sorted(result["chunks_per_worker"].items()))
        differing = sorted(stage for stage in first if result["digests"].get(stage) != first[stage])
        identical = "yes" if not differing else f"no ({', '.join(differing)})"
        print(f"| {n} | {result['wall_s']:.1f} | {one['wall_s'] / result['wall_s']:.2f} | {result['chunks_s']:.1f} | "
              f"{one['chunks_s'] / result['chunks_s']:.2f} | {per_worker} | {peak:.0f} MiB | {identical} |")
    same = all(r["digests"] == first for _, r, _ in rows)
    print(f"\nstored numbers of {', '.join(sorted(rows[0][1]['digests']))} identical across worker counts: {same}")
    print(f"load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: lower bounds)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
