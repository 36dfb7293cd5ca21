"""A full audit's wall time and peak memory: 1,000 generated images against isic-uda1 (557), on this machine.

Two configurations, each from an empty database, media folder and feature cache (nothing cached from an earlier run):

- embedded: the README's default (SQLite, Celery eager): the whole audit runs in one process;
- postgres: PostgreSQL + Redis with 2 `celery worker` processes (solo pool, one process each) taking the chunks.

Set-up (not timed, identical in both): import ../shared/data/isic-uda1 as the reference; import 1,000 "generated"
images (re-encoded flips and crops of the 412 PAD-UFES-20 clinical photos, a different acquisition than the
reference — the audit should and does find them far from it); train a DCGAN baseline for --gan-minutes and sample
300 images into the baseline set.

Timed: from queueing the audit to its "succeeded" state: features of all 1,857 images (generated, reference,
baseline, chunks of 64), fidelity and diversity with the real-vs-real floor, the reference-halves negative control,
baseline and copy baseline (jackknife CIs), phototype estimates, balance and controls, fitness for purpose (the
linear-probe utility test on benign_malignant labels, 5 folds x 5 repeats, its own time printed), memorisation by calibrated
copy detection with its held-out and copy controls, detectability (the audit's own detector training: a
cross-fitted ViT and feature probe on the generated set, the reference halves and the baseline set; printed in its
own column), Grad-CAM of the cross-fitted detector with its faithfulness (ROAD) score, and the PDF report with its
JSON twin. Peak memory: the audit process's peak RSS
(embedded), the sum of the two workers' peak RSS (postgres; an upper bound of their joint peak).
Target (issue #8): <= 3 minutes and <= 3 GB.

    .venv/bin/python benchmarks/audit.py [--images 1000] [--configs embedded postgres] [--precision auto]

Needs ../shared/data (DERMAUDIT_SHARED_DATA overrides), and for "postgres" PostgreSQL and Redis on loopback
(BENCH_POSTGRES_URL, BENCH_REDIS_URL override).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import SHARED, build_zip  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/dermaudit_auditbench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
ORG = "Benchmark organisation"


MALIGNANT = {"BCC", "SCC", "MEL"}  # PAD-UFES-20's skin cancers; ACK, NEV and SEK are benign


def build_generated_zip(path: Path, n: int) -> None:
    """n distinct JPEGs from the 412 PAD-UFES-20 photos (original, mirrored, then 1-px-step crops), with a labels.csv
    giving each its source's benign_malignant class (isic-uda1 carries the same column), so that the utility stage
    has a labelled set to work on."""
    sources = sorted((SHARED / "pad-ufes-20" / "images").glob("*.png"))
    if not sources:
        raise SystemExit(f"no PAD-UFES-20 images under {SHARED / 'pad-ufes-20'} (set DERMAUDIT_SHARED_DATA)")
    build_zip(path, n, sources, folder="generated")
    with open(SHARED / "pad-ufes-20" / "labels.csv", newline="") as handle:
        diagnosis = {Path(row["file"]).name: row["diagnosis"] for row in csv.DictReader(handle)}
    lines = ["file,benign_malignant"] + [
        f"generated/gen_{i:05d}.jpg,{'malignant' if diagnosis[sources[i % len(sources)].name] in MALIGNANT else 'benign'}"
        for i in range(n)]
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("generated/labels.csv", "\n".join(lines) + "\n")


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def set_up(env: dict, zip_path: Path, args) -> None:
    manage(env, "migrate", "-v0")
    manage(env, "import_images", str(SHARED / "isic-uda1"), "--set", "isic-uda1", "--organisation", ORG)
    manage(env, "import_images", str(zip_path), "--set", "generated", "--kind", "generated", "--organisation", ORG)
    manage(env, "train_baseline", "--reference", "isic-uda1", "--kind", "dcgan", "--minutes", str(args.gan_minutes),
           "--seed", "1", "--sample", "300")
    manage(env, "shell", "-c", _SHELL_BASELINE_NAME)


# The baseline set's name is the train_baseline command's choice; give it a fixed alias for the next commands.
_SHELL_BASELINE_NAME = (
    "from auditor.models import ImageSet; s = ImageSet.objects.filter(kind='baseline').latest('pk'); "
    "s.name = 'baseline-dcgan'; s.save(update_fields=['name'])"
)

_CHILD = r"""
import json, sys, time
import django
django.setup()
from django.db import transaction
from auditor.audits import pipeline
from auditor.models import Audit, ImageSet, Organisation
from auditor.audits.tasks import run_audit_task

org = Organisation.objects.get(name=%(org)r)
sets = {s.name: s for s in ImageSet.objects.filter(organisation=org)}
baseline = ImageSet.objects.filter(organisation=org, kind="baseline").latest("pk")
audit = Audit.objects.create(organisation=org, name="benchmark", generated_set=sets["generated"],
                             reference_set=sets["isic-uda1"], baseline_set=baseline, include_copy_baseline=True,
                             seed=20261128, target_phototype={"kind": "uniform"},
                             criteria={"utility_gain": {"label": "benign_malignant"}})
started = time.time()
with transaction.atomic():
    pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
while True:
    audit.refresh_from_db()
    if audit.status in ("succeeded", "failed"):
        break
    time.sleep(0.5)
wall = time.time() - started
results = {r.stage: r.data for r in audit.results.all()}
# Each stage's wall time: features from the audit's start to its last chunk, then from the previous stage's stored
# result to its own.
last_chunk = max(c.finished_at for c in audit.chunks.all())
stage_s, previous = {"features": round((last_chunk - audit.started_at).total_seconds(), 1)}, last_chunk
for row in audit.results.order_by("created_at"):
    stage_s[row.stage] = round((row.created_at - previous).total_seconds(), 1)
    previous = row.created_at
chunks = list(audit.chunks.values_list("worker", flat=True))
print("RESULT " + json.dumps({
    "status": audit.status, "error": audit.error, "wall_s": wall, "images": sum(len(c.image_ids) for c in audit.chunks.all()),
    "workers": sorted(set(chunks)), "chunks": len(chunks),
    "frechet": results.get("fidelity", {}).get("generated", {}).get("frechet", {}).get("value"),
    "vit_auc": (((results.get("detectability") or {}).get("vit") or {}).get("audited") or {}).get("auc"),
    "probe_auc": (((results.get("detectability") or {}).get("probe") or {}).get("audited") or {}).get("auc"),
    "verdicts": {c["name"]: c["status"] for c in (results.get("report") or {}).get("criteria", [])},
    "report": (results.get("report") or {}).get("pdf_sha256"), "stage_s": stage_s,
    "feature_precision": audit.feature_precision,
    "detectability_s": stage_s.get("detectability"),  # the stage's wall time (its probe runs beside the ViT)
    "utility": {"seconds": (results.get("utility") or {}).get("seconds"), "error": (results.get("utility") or {}).get("error"),
                "gain": ((results.get("utility") or {}).get("audited") or {}).get("gain")},
}))
"""


def run_child_measured(env: dict) -> tuple[dict, float]:
    """Create and run the audit in a fresh process; returns its result line and the process's peak RSS (MiB)."""
    process = subprocess.Popen([sys.executable, "-c", _CHILD % {"org": ORG}], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = status
    line = next((row for row in out.splitlines() if row.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"audit process failed ({status}):\n{out[-2000:]}\n{err[-4000:]}")
    return json.loads(line[7:]), usage.ru_maxrss / 1024


def fresh_postgres() -> bool:
    admin, db = PG_URL.rsplit("/", 1)[0] + "/postgres", PG_URL.rsplit("/", 1)[1]
    try:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True, capture_output=True)
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {db}"], check=True, capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"PostgreSQL not available ({exc}); skipping that configuration", file=sys.stderr)
        return False


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def start_workers(env: dict, n: int, tmp: Path) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        log = open(tmp / f"worker{i}.log", "wb")
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "auditor", "worker", "-n", f"bench{i}@%h", "--pool=solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all("ready." in (tmp / f"worker{i}.log").read_text(errors="replace") for i in range(n)):
            return workers
        time.sleep(0.5)
    raise RuntimeError("workers did not start:\n" + (tmp / "worker0.log").read_text(errors="replace")[-3000:])


def stop_workers(workers: list[subprocess.Popen]) -> float:
    """Warm shutdown; returns the sum of the workers' peak RSS in MiB."""
    total = 0.0
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        _, _, usage = os.wait4(worker.pid, 0)
        total += usage.ru_maxrss / 1024
    return total


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="generated images")
    parser.add_argument("--configs", nargs="+", default=["embedded", "postgres"], choices=["embedded", "postgres"])
    parser.add_argument("--gan-minutes", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"],
                        help="DERMAUDIT_FEATURE_PRECISION, one audit per value and configuration (auto: bf16 where "
                             "the CPU has native BF16, fp32 elsewhere)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="dermaudit-auditbench-") as tmp_name:
        tmp = Path(tmp_name)
        zip_path = tmp / "generated.zip"
        build_generated_zip(zip_path, args.images)
        for config, precision in [(c, p) for c in args.configs for p in args.precision]:
            var = tmp / f"{config}-{precision}"
            env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT"}}
            env.update(DJANGO_SETTINGS_MODULE="auditor.settings", DERMAUDIT_VAR_DIR=str(var), DERMAUDIT_QUEUE=f"auditbench-{os.getpid()}", PYTHONUNBUFFERED="1",
                       DERMAUDIT_FEATURE_PRECISION=precision)
            if config == "postgres":
                if not fresh_postgres():
                    continue
                flush_redis()
                env.update(DATABASE_URL=PG_URL)
            t0 = time.perf_counter()
            set_up(env, zip_path, args)
            setup_s = time.perf_counter() - t0
            print(f"[{config}, {precision}] set-up {setup_s:.0f} s (not timed); running the audit …", flush=True)
            if config == "embedded":
                result, peak = run_child_measured(env)
                processes = "1 (eager)"
            else:
                # The README's topology: chunk threads = cores ÷ workers on the machine.
                worker_env = {**env, "CELERY_BROKER_URL": REDIS_URL,
                              "DERMAUDIT_CHUNK_THREADS": str(max(1, (os.cpu_count() or 1) // args.workers))}
                workers = start_workers(worker_env, args.workers, tmp)
                try:
                    result, _ = run_child_measured(worker_env)
                finally:
                    peak = stop_workers(workers)
                processes = f"{args.workers} workers"
            if result["status"] != "succeeded":
                raise SystemExit(f"[{config}] audit failed: {result['error']}")
            rows.append((config, processes, result, peak, load()))
            print(f"[{config}, {precision}] {result['wall_s']:.1f} s, peak {peak:.0f} MiB", flush=True)

    print(f"\nFull audit: {args.images} generated vs isic-uda1 (557) + 300 baseline; the audit trains its own "
          f"detectors (detectability column, inside the wall time); {os.cpu_count()} CPUs")
    header = (f"| {'configuration':<22} | {'precision':<9} | {'processes':<10} | {'images':>6} | {'wall':>8} | {'detectab.':>9} | {'peak RSS':>9} "
              f"| {'FD gen':>7} | {'ViT AUC':>7} | {'probe':>6} | {'load 1/5/15':<14} | target |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for config, processes, result, peak, load_text in rows:
        ok = result["wall_s"] <= 180 and peak <= 3 * 1024
        name = "embedded (SQLite)" if config == "embedded" else "PostgreSQL + Redis"
        vit, probe = (result[k] if result[k] is not None else float("nan") for k in ("vit_auc", "probe_auc"))
        print(f"| {name:<22} | {result['feature_precision']:<9} | {processes:<10} | {result['images']:>6} | {result['wall_s']:>6.1f} s | "
              f"{result['detectability_s']:>7.1f} s | {peak:>5.0f} MiB | {result['frechet'] or float('nan'):>7.1f} | "
              f"{vit:>7.3f} | {probe:>6.3f} | {load_text:<14} | {'PASS' if ok else 'FAIL'} |")
        print(f"  verdicts: {', '.join(f'{k} {v}' for k, v in result['verdicts'].items())}")
        print(f"  stages (s): {', '.join(f'{k} {v}' for k, v in result['stage_s'].items())}")
        utility = result["utility"]
        print(f"  utility (linear probe, 5 folds x 5 repeats): {utility['seconds'] or float('nan'):.1f} s inside the stage"
              f" (target <= 30 s); AUROC gain {utility['gain'] if utility['gain'] is not None else utility['error']}")
    for precision in sorted({row[2]["feature_precision"] for row in rows}):  # configurations compared within a precision
        same = [row for row in rows if row[2]["feature_precision"] == precision]
        if len(same) == 2:
            a, b = same
            print(f"\n{precision}: workers {', '.join(b[2]['workers'])} ({b[2]['chunks']} chunks); "
                  f"same FD in both configurations: {a[2]['frechet'] == b[2]['frechet']}; same ViT AUC: "
                  f"{a[2]['vit_auc'] == b[2]['vit_auc']}; same probe AUC: {a[2]['probe_auc'] == b[2]['probe_auc']}")


if __name__ == "__main__":
    main()
