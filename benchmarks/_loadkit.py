"""What the HTTP load benchmarks share: a throw-away PostgreSQL database, gunicorn on loopback, a tiny keep-alive
client, and the server's CPU time. Used by reader_load.py and api_load.py; not a test helper, not product code."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]

# Called after every Browser request as (method, path, status or None, milliseconds, exception or None).
RequestObserver = Callable[[str, str, "int | None", float, "BaseException | None"], None]
_request_observer: RequestObserver | None = None


def observe_requests(observer: RequestObserver | None) -> None:
    """Have every Browser in this process report each request (a benchmark's recorder); None stops it."""
    global _request_observer
    _request_observer = observer


def _split_url(url: str) -> tuple[str, str]:
    name = url.rsplit("/", 1)[1]
    return name, url.rsplit("/", 1)[0] + "/postgres"


def recreate_database(url: str) -> None:
    import psycopg

    name, admin = _split_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    name, admin = _split_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: ends our own leftover sessions too


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - start) * 1000


class Browser:
    """One keep-alive HTTP connection with a cookie jar: enough of a browser for Django's login and forms."""

    def __init__(self, port: int, headers: dict | None = None):
        self.port, self.cookies, self.headers = port, {}, headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        all_headers = {**self.headers, **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        start = time.perf_counter()
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError) as exc:
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    self._report(method, path, None, start, exc)
                    raise
            except Exception as exc:  # a timeout, for instance: reported, then raised as before
                self._report(method, path, None, start, exc)
                raise
        self._report(method, path, response.status, start, None)
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data

    @staticmethod
    def _report(method: str, path: str, status: int | None, start: float, exc: BaseException | None) -> None:
        if _request_observer is not None:
            _request_observer(method, path, status, (time.perf_counter() - start) * 1000, exc)

    def form_post(self, path: str, fields: dict):
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://127.0.0.1:{self.port}{path}"})


def process_group_cpu_seconds(group: int) -> float:
    """user + system CPU of every live process in a process group (the gunicorn master and its workers)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields[2] is the process group id
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def start_gunicorn(port: int, env: dict, config_dir: Path, workers: int, worker_class: str = "gthread",
                   threads: int = 1) -> subprocess.Popen:
    """gunicorn serving auditor.wsgi on 127.0.0.1:port in its own process group (stop it with stop_gunicorn)."""
    # The URLconf imports the whole service (torch included: seconds). A long-running server pays that once; so
    # that the measurement shows steady state, the master imports it before forking the workers.
    config = config_dir / "gunicorn_conf.py"
    config.write_text("def when_ready(server):\n    from django.urls import get_resolver\n    get_resolver().url_patterns\n")
    command = [str(Path(sys.executable).parent / "gunicorn"), "auditor.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
               "-k", worker_class]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    command += ["--log-level", "warning", "--preload", "-c", str(config)]
    return subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)


def wait_for_port(port: int, attempts: int = 100, server: subprocess.Popen | None = None) -> bool:
    """True once something accepts connections on 127.0.0.1:port (0.2 s between attempts)."""
    for _ in range(attempts):
        if server is not None and server.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def stop_gunicorn(server: subprocess.Popen) -> None:
    """SIGTERM to the whole process group (master and workers); SIGKILL if it has not gone within 30 s."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
