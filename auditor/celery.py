"""Celery application. Eager (in-process) unless CELERY_BROKER_URL is set; see settings.

Each real worker also looks after audits whose worker died (auditor/audits/recovery.py): once at start-up, taking back
what an earlier process under the same name (-n) had claimed, then every DERMAUDIT_RECOVERY_INTERVAL_SECONDS
for work whose lease ran out. It runs in a thread of the worker's main process, beside the pool.
"""
import logging
import os
import threading

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auditor.settings")

app = Celery("auditor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # the installed apps' tasks modules (reader_study.tasks)
# Each domain of the auditor app keeps its tasks.py beside what it wraps; workers register them all.
app.autodiscover_tasks(["auditor.ingestion", "auditor.audits", "auditor.detection", "auditor.generation"])

logger = logging.getLogger(__name__)
_recovery = {"started_at": None, "stop": threading.Event(), "thread": None}


@worker_init.connect
def _remember_start(**kwargs) -> None:
    from django.utils import timezone

    _recovery["started_at"] = timezone.now()  # before the worker consumes anything: later claims are this process's


@worker_ready.connect
def _start_recovery(sender=None, **kwargs) -> None:
    from django.conf import settings
    from django.utils import timezone

    from auditor.audits.recovery import Restart

    restart = Restart(name=sender.hostname, at=_recovery["started_at"] or timezone.now())
    interval = float(settings.DERMAUDIT_RECOVERY_INTERVAL_SECONDS)
    thread = threading.Thread(target=_recovery_loop, args=(restart, interval), name="audit-recovery", daemon=True)
    _recovery["thread"] = thread
    thread.start()


@worker_shutdown.connect
def _stop_recovery(**kwargs) -> None:
    _recovery["stop"].set()


def _recovery_loop(restart, interval: float) -> None:
    from django.db import connection

    from auditor.audits.tasks import recover_audits

    first = True
    while True:
        try:
            recover_audits(restart=restart if first else None)
            first = False
        except Exception:  # the database may be briefly unreachable: try again next round
            logger.exception("audit recovery failed")
        finally:
            connection.close()
        if interval <= 0 or _recovery["stop"].wait(interval):
            return
