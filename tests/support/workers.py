"""Start real `celery worker` processes against the test database, for tests where tasks matter.

The broker is Redis when DERMAUDIT_TEST_BROKER_URL is set (CI does), else kombu's filesystem transport,
so the test also runs under the embedded default with no services installed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from celery import Celery
from django.conf import settings
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"


class WorkerPool:
    """Worker processes on one test queue. `env` adds or overrides environment variables of every worker."""

    def __init__(self, tmp_path: Path, media_root: Path, env: dict[str, str] | None = None):
        self.queue = f"test-{uuid.uuid4().hex[:10]}"
        self.broker = os.environ.get("DERMAUDIT_TEST_BROKER_URL") or "filesystem://"
        self.queue_dir = tmp_path / "broker"
        self.queue_dir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": self.broker,
            "CELERY_FILESYSTEM_QUEUE": str(self.queue_dir),
            "DERMAUDIT_QUEUE": self.queue,
            "MEDIA_ROOT": str(media_root),
            "DERMAUDIT_FEATURE_CACHE": str(getattr(settings, "DERMAUDIT_FEATURE_CACHE", tmp_path / "features")),
            "DERMAUDIT_MODEL_DIR": str(getattr(settings, "DERMAUDIT_MODEL_DIR", tmp_path / "models")),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen] = []
        self.starts: dict[str, int] = {}
        # Not the current app: tasks this test process runs eagerly must keep using the project's (eager) app.
        self.app = Celery("test-sender", broker=self.broker, set_as_current=False)
        options = {"data_folder_in": str(self.queue_dir), "data_folder_out": str(self.queue_dir),
                   "control_folder": str(self.queue_dir / "control")}
        self.app.conf.update(task_default_queue=self.queue, broker_transport_options=options if self.broker.startswith("filesystem") else {})

    def start(self, name: str, concurrency: int = 1) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "auditor", "worker", "-Q", self.queue, "-n", f"{name}@%h",
             "--pool=prefork", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel=INFO"],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes.append(process)
        self.starts[name] = self.starts.get(name, 0) + 1
        return process

    @staticmethod
    def hostname(name: str) -> str:
        """The node name a worker started as `name` records on the work it does (`-n name@%h`)."""
        return f"{name}@{socket.gethostname()}"

    def wait_ready(self, *names: str, timeout: float = 120) -> None:
        """Until each named worker consumes (its latest start says so in the log), so the first to start does not
        take all the work."""
        for name in names:
            marker = f"{self.hostname(name)} ready."
            try:
                wait_for(lambda: self.log(name).count(marker) >= self.starts[name], timeout, message=f"worker {name} to start")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}; its log:\n{self.log(name)[-3000:]}") from None

    def send(self, task_name: str, *args) -> None:
        self.app.send_task(task_name, args=list(args), queue=self.queue)

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    self.kill(process, signal.SIGTERM)
                except subprocess.TimeoutExpired:
                    # A warm shutdown waits for the task in hand (an audit stage can take minutes on a busy machine):
                    # the test is over, so end it.
                    self.kill(process, signal.SIGKILL)

    def log(self, name: str) -> str:
        """Everything the worker `name` wrote (all its incarnations: a restart appends)."""
        path = self.tmp_path / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def worker_pool(tmp_path: Path, media_root: Path, env: dict[str, str] | None = None):
    pool = WorkerPool(tmp_path, media_root, env)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_for(predicate, timeout: float, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {message}")
