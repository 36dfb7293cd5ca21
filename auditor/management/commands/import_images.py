"""manage.py import_images FOLDER_OR_ZIP --set NAME [--kind reference] [--organisation ORG]"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from auditor.ingestion.importer import run_ingest
from auditor.ingestion.summary import image_set_summary
from auditor.models import ImageSet, IngestJob, Organisation


class Command(BaseCommand):
    help = "Import a folder or zip of images (with optional labels.csv) into an image set, in this process."

    def add_arguments(self, parser):
        parser.add_argument("source", help="folder or .zip file")
        parser.add_argument("--set", dest="set_name", help="image set name (default: the folder's name)")
        parser.add_argument("--kind", default=ImageSet.Kind.REFERENCE, choices=[k for k, _ in ImageSet.Kind.choices])
        parser.add_argument("--organisation", default="Default organisation")

    def handle(self, *args, **options):
        source = Path(options["source"]).expanduser().resolve()
        if not source.exists():
            raise CommandError(f"{source} does not exist")
        organisation, _ = Organisation.objects.get_or_create(name=options["organisation"])
        name = options["set_name"] or source.stem
        image_set, created = ImageSet.objects.get_or_create(
            organisation=organisation, name=name, defaults={"kind": options["kind"]}
        )
        job = IngestJob.objects.create(image_set=image_set, source=str(source)[:500], source_paths=[str(source)])

        def report(current: IngestJob) -> None:
            self.stderr.write(f"\r  {current.processed}/{current.total}", ending="")

        run_ingest(job, [source], after_chunk=report)
        self.stderr.write("")
        self.stdout.write(image_set_summary(image_set, job))
        seconds = (job.finished_at - job.started_at).total_seconds()
        self.stdout.write(f"  import time: {job.total} files in {seconds:.2f} s ({job.total / max(seconds, 1e-9):.1f} files/s)")
