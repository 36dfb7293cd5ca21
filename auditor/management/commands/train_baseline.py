"""manage.py train_baseline --reference <set> --kind dcgan|cdcgan|vae --minutes N [--sample N]"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from auditor.generation.runs import sample_to_image_set
from auditor.generation.tasks import train_generator_task
from auditor.management.training_commands import find_image_set, finished_or_fail, run_training_task
from auditor.models import GeneratorRun
from auditor.models.training import TrainingStatus


class Command(BaseCommand):
    help = ("Train a reference generator on an image set as a Celery task (on the workers when a broker is configured, "
            "waiting and printing progress; else in this process); optionally sample a baseline set.")

    def add_arguments(self, parser):
        parser.add_argument("--reference", required=True, help="image set id or name")
        parser.add_argument("--kind", choices=[k for k, _ in GeneratorRun.Kind.choices], default="dcgan")
        parser.add_argument("--minutes", type=float, default=None)
        parser.add_argument("--steps", type=int, default=None)
        parser.add_argument("--condition", choices=["diagnosis", "fitzpatrick"], default="", help="cdcgan label")
        parser.add_argument("--image-size", type=int, default=64, choices=[32, 64, 128])
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--sample", type=int, default=0, help="then sample N images into a baseline set")
        parser.add_argument("--no-wait", action="store_true", help="queue the run and return (with a broker)")

    def handle(self, *args, **options):
        reference = find_image_set(options["reference"])
        if options["minutes"] is None and options["steps"] is None:
            raise CommandError("give --minutes or --steps")
        run = GeneratorRun.objects.create(
            organisation=reference.organisation, kind=options["kind"], reference_set=reference,
            condition_label=options["condition"], seed=options["seed"],
            max_seconds=options["minutes"] * 60 if options["minutes"] else None, max_steps=options["steps"],
            config={"image_size": options["image_size"]},
        )
        run = finished_or_fail(run_training_task(run, train_generator_task, self.stdout.write,
                                                 wait=not options["no_wait"]))
        if run.status not in {TrainingStatus.SUCCEEDED, TrainingStatus.CANCELLED}:
            return  # queued with --no-wait
        self.stdout.write(f"generator run {run.pk}: {run.message}; checkpoint {run.checkpoint} sha256 {run.checkpoint_sha256}")
        if options["sample"]:
            image_set = sample_to_image_set(run, options["sample"], seed=options["seed"])
            self.stdout.write(f"baseline set {image_set.pk} {image_set.name!r}: {image_set.images.count()} images")
