"""manage.py train_detector --reference <set> --synthetic <set> [--synthetic <set> …] --minutes N"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ...detectors import DetectorError, train_detector_run
from ...models import DetectorRun, ImageSet


def _find(identifier: str) -> ImageSet:
    query = ImageSet.objects.filter(pk=int(identifier)) if identifier.isdigit() else ImageSet.objects.filter(name=identifier)
    image_set = query.first()
    if image_set is None:
        raise CommandError(f"no image set {identifier!r}")
    return image_set


class Command(BaseCommand):
    help = "Train a synthetic-image detector (real reference set vs synthetic sets) in this process; print its evaluation."

    def add_arguments(self, parser):
        parser.add_argument("--reference", required=True, help="real images: image set id or name")
        parser.add_argument("--synthetic", required=True, action="append", help="synthetic image set id or name (repeatable)")
        parser.add_argument("--minutes", type=float, default=15.0)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        reference = _find(options["reference"])
        synthetic = [_find(s) for s in options["synthetic"]]
        if any(s.organisation_id != reference.organisation_id for s in synthetic):
            raise CommandError("all sets must belong to the reference set's organisation")
        run = DetectorRun.objects.create(organisation=reference.organisation, reference_set=reference,
                                         seed=options["seed"], max_seconds=options["minutes"] * 60)
        run.synthetic_sets.set(synthetic)
        try:
            run = train_detector_run(run)
        except DetectorError as exc:
            DetectorRun.objects.filter(pk=run.pk).update(status="failed", message=str(exc))
            raise CommandError(str(exc)) from None
        overall = run.evaluation["overall"]
        self.stdout.write(f"detector run {run.pk}: {run.message}; checkpoint sha256 {run.checkpoint_sha256}")
        for name in ("roc_auc", "average_precision", "accuracy_at_0_5", "ece_before_scaling", "ece_after_scaling"):
            metric = overall[name]
            self.stdout.write(f"  test {name:<20} {metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]")
