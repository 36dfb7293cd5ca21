"""The README's main job on the embedded default: import a reference set and print its summary.

(Extended by the audit pipeline: train a baseline, sample a batch, audit it and print the report path.)
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ...importer import run_ingest
from ...models import ImageSet, IngestJob, Organisation
from ...summary import image_set_summary

DEFAULT_REFERENCE = settings.BASE_DIR.parent / "shared" / "data" / "isic-uda1"


class Command(BaseCommand):
    help = "Run DermAudit's main job end to end on a reference folder (default ../shared/data/isic-uda1)."

    def add_arguments(self, parser):
        parser.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                            help="folder or zip of real dermatology images, optionally with labels.csv")

    def handle(self, *args, **options):
        reference = Path(options["reference"]).expanduser()
        if not reference.exists():
            raise CommandError(
                f"No reference images at {reference}. Give a folder of real dermatology images (JPEG/PNG, "
                "optionally with a labels.csv whose 'file' column names them): "
                "python manage.py demo --reference /path/to/folder. Openly licensed sets such as the ISIC "
                "Archive (CC0) can be downloaded on a machine with internet access and copied here."
            )
        organisation, _ = Organisation.objects.get_or_create(name="Demo organisation")
        image_set, _ = ImageSet.objects.get_or_create(
            organisation=organisation, name=f"reference: {reference.name}", defaults={"kind": ImageSet.Kind.REFERENCE}
        )
        job = IngestJob.objects.create(image_set=image_set, source=str(reference)[:500], source_paths=[str(reference)])
        self.stdout.write(f"Importing {reference} …")
        run_ingest(job, [reference])
        self.stdout.write(image_set_summary(image_set, job))
