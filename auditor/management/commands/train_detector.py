"""manage.py train_detector --reference <set> --synthetic <set> [--synthetic <set> …] --minutes N [--no-wait]"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from auditor.detection.tasks import train_detector_task
from auditor.management.training_commands import find_image_set, finished_or_fail, run_training_task
from auditor.models import DetectorRun
from auditor.models.training import TrainingStatus


class Command(BaseCommand):
    help = ("Train a synthetic-image detector (real reference set vs synthetic sets) as a Celery task: on the "
            "workers when a broker is configured (waiting and printing progress), else in this process.")

    def add_arguments(self, parser):
        parser.add_argument("--reference", required=True, help="real images: image set id or name")
        parser.add_argument("--synthetic", required=True, action="append", help="synthetic image set id or name (repeatable)")
        parser.add_argument("--minutes", type=float, default=15.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return (with a broker)")

    def handle(self, *args, **options):
        reference = find_image_set(options["reference"])
        synthetic = [find_image_set(s) for s in options["synthetic"]]
        if any(s.organisation_id != reference.organisation_id for s in synthetic):
            raise CommandError("all sets must belong to the reference set's organisation")
        run = DetectorRun.objects.create(organisation=reference.organisation, reference_set=reference,
                                         seed=options["seed"], max_seconds=options["minutes"] * 60)
        run.synthetic_sets.set(synthetic)
        run = finished_or_fail(run_training_task(run, train_detector_task, self.stdout.write,
                                                 wait=not options["no_wait"]))
        if run.status != TrainingStatus.SUCCEEDED:
            self.stdout.write(f"detector run {run.pk}: {run.status} {run.message}")
            return
        overall = run.evaluation["overall"]
        self.stdout.write(f"detector run {run.pk}: {run.message}; checkpoint sha256 {run.checkpoint_sha256}")
        for name in ("roc_auc", "average_precision", "accuracy_at_0_5", "ece_before_scaling", "ece_after_scaling"):
            metric = overall[name]
            self.stdout.write(f"  test {name:<20} {metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]")
