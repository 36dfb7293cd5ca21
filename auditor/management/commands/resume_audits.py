"""manage.py resume_audits [--all-workers-stopped]: re-enqueue audit work that dead workers left behind."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from auditor.audits.tasks import recover_audits
from auditor.models import Audit


class Command(BaseCommand):
    help = ("Re-enqueue the chunks and set-level stages of running audits that no live worker is doing (their lease "
            "ran out). Workers do this on their own every DERMAUDIT_RECOVERY_INTERVAL_SECONDS; this is for operators. "
            "Without a broker (embedded default) the work runs here, now.")

    def add_arguments(self, parser):
        parser.add_argument("--all-workers-stopped", action="store_true",
                            help="no worker is running now: take back every claim at once, without waiting for leases")

    def handle(self, *args, **options):
        active = Audit.objects.filter(status__in=[Audit.Status.QUEUED, Audit.Status.RUNNING]).count()
        recovery = recover_audits(assume_all_dead=options["all_workers_stopped"])
        if not recovery:
            self.stdout.write(f"nothing to resume ({active} audits queued or running, each with a live worker or lease)")
            return
        self.stdout.write(f"re-enqueued {len(recovery.chunks)} chunks and the set-level stages of "
                          f"{len(recovery.continued)} audits (of {active} queued or running)")
        for audit_id in recovery.failed:
            self.stdout.write(f"audit {audit_id} failed: {Audit.objects.get(pk=audit_id).error}")
