"""Ingest throughput and peak memory for a large zip, embedded default (SQLite) vs PostgreSQL.

Builds zips of distinct real-looking JPEGs (crops/flips of ../shared/data/isic-uda1 and pad-ufes-20, re-encoded)
in a temporary folder, then runs `manage.py import_images ZIP` in a fresh process per configuration and reports
files/s (import phase, from the job's own timestamps), whole-process wall time and peak RSS (wait4 rusage).
Peak memory must not grow with the zip's size: the table shows 500 vs 2,000 images side by side.

    .venv/bin/python benchmarks/ingest.py [--sizes 500 2000] [--no-postgres]
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/dermaudit_bench")


def build_zip(path: Path, n: int, sources: list[Path] | None = None, folder: str = "images") -> None:
    """n distinct JPEGs from the sources (default: both shared sets): as they are, mirrored, then 1-px-step crops."""
    if sources is None:
        sources = sorted((SHARED / "isic-uda1" / "images").glob("*.jpg")) + sorted((SHARED / "pad-ufes-20" / "images").glob("*.png"))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(n):
            image = Image.open(sources[i % len(sources)]).convert("RGB")
            variant = i // len(sources)
            if variant % 2:
                image = ImageOps.mirror(image)
            if variant >= 2:
                w, h = image.size
                image = image.crop((variant, variant, w - variant, h - variant))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=92)
            archive.writestr(f"{folder}/gen_{i:05d}.jpg", buffer.getvalue())


def run_import(zip_path: Path, env: dict[str, str], name: str) -> dict[str, float]:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "manage.py", "import_images", str(zip_path), "--set", name],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"import failed:\n{output}")
    match = re.search(r"import time: (\d+) files in ([\d.]+) s", output)
    files, seconds = int(match.group(1)), float(match.group(2))
    return {"files": files, "import_s": seconds, "rate": files / seconds, "wall_s": wall, "peak_mib": usage.ru_maxrss / 1024}


def postgres_ready() -> bool:
    admin = PG_URL.rsplit("/", 1)[0] + "/postgres"
    db = PG_URL.rsplit("/", 1)[1]
    try:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {db}"], check=True, capture_output=True)
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {db}"], check=True, capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dermaudit-bench-") as tmp:
        tmp_path = Path(tmp)
        for n in args.sizes:
            zip_path = tmp_path / f"batch_{n}.zip"
            build_zip(zip_path, n)
            backends = [("sqlite", None)] + ([] if args.no_postgres else [("postgresql", PG_URL)])
            for backend, url in backends:
                env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
                env["DERMAUDIT_VAR_DIR"] = str(tmp_path / f"var-{backend}-{n}")
                if url:
                    if not postgres_ready():
                        print(f"(PostgreSQL not reachable at {PG_URL}: skipped)")
                        continue
                    env["DATABASE_URL"] = url
                result = run_import(zip_path, env, f"bench-{n}")
                rows.append((backend, n, zip_path.stat().st_size / 2**20, result))
    print(f"\n{'backend':<11}{'images':>8}{'zip MiB':>9}{'import s':>10}{'images/s':>10}{'process s':>11}{'peak MiB':>10}")
    for backend, n, size, r in rows:
        print(f"{backend:<11}{n:>8}{size:>9.1f}{r['import_s']:>10.2f}{r['rate']:>10.1f}{r['wall_s']:>11.2f}{r['peak_mib']:>10.0f}")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end (shared machine: "
          "numbers under load are lower bounds)")


if __name__ == "__main__":
    main()
