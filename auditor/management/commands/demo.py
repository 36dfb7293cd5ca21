"""The README's main job, end to end on the embedded default.

Ingest a real reference set (default ../shared/data/isic-uda1), train a class-conditional reference DCGAN briefly
(conditioned on the diagnosis) and sample a "generated" batch from it — each sample carries the class it was drawn
for, so the audit can ask whether the images help a classifier —, train a small VAE as the baseline family, run the
full audit (features, fidelity, phototype, fitness for purpose, memorisation by copy detection, detectability by
cross-fitted detectors with their controls, Grad-CAM, report) and print the path of the PDF.
"""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from auditor.audits import pipeline
from auditor.audits.tasks import run_audit_task
from auditor.generation.runs import sample_to_image_set, train_generator
from auditor.ingestion.importer import run_ingest
from auditor.ingestion.summary import image_set_summary
from auditor.models import Audit, GeneratorRun, ImageSet, IngestJob, Membership, Organisation, Role

DEFAULT_REFERENCE = settings.BASE_DIR.parent / "shared" / "data" / "isic-uda1"


class Command(BaseCommand):
    help = "Run DermAudit's main job end to end: ingest, train a baseline, sample, audit, report."

    def add_arguments(self, parser):
        parser.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                            help="folder or zip of real dermatology images, optionally with labels.csv")
        parser.add_argument("--gan-minutes", type=float, default=3.0, help="DCGAN training budget")
        parser.add_argument("--vae-minutes", type=float, default=1.0, help="VAE baseline training budget")
        parser.add_argument("--samples", type=int, default=300, help="images in the generated and baseline batches")
        parser.add_argument("--seed", type=int, default=20261128)

    def step(self, message: str) -> None:
        self.stdout.write(f"[{time.perf_counter() - self.started:7.1f} s] {message}")

    def handle(self, *args, **options):
        self.started = time.perf_counter()
        reference_path = Path(options["reference"]).expanduser()
        if not reference_path.exists():
            raise CommandError(
                f"No reference images at {reference_path}. Give a folder of real dermatology images (JPEG/PNG, "
                "optionally with a labels.csv whose 'file' column names them): "
                "python manage.py demo --reference /path/to/folder. Openly licensed sets such as the ISIC "
                "Archive (CC0) can be downloaded on a machine with internet access and copied here."
            )
        # The embedded database may be new (a fresh DERMAUDIT_VAR_DIR): bring it up to date first; a no-op otherwise.
        call_command("migrate", verbosity=0, interactive=False)
        organisation, _ = Organisation.objects.get_or_create(name="Demo organisation")
        user, _ = get_user_model().objects.get_or_create(username="demo-quality")
        Membership.objects.get_or_create(user=user, organisation=organisation, defaults={"role": Role.QUALITY})

        reference, _ = ImageSet.objects.get_or_create(organisation=organisation, name=f"reference: {reference_path.name}",
                                                      defaults={"kind": ImageSet.Kind.REFERENCE, "created_by": user})
        job = IngestJob.objects.create(image_set=reference, source=str(reference_path)[:500], source_paths=[str(reference_path)])
        self.step(f"importing {reference_path}")
        run_ingest(job, [reference_path])
        self.stdout.write(image_set_summary(reference, job))

        seed = options["seed"]
        tag = time.strftime("%Y%m%d-%H%M%S")  # set names are unique per organisation; each demo run makes new ones
        generated = self.trained_samples(reference, "cdcgan", options["gan_minutes"], options["samples"], seed, user,
                                         f"generated batch {tag} (class-conditional DCGAN, {options['gan_minutes']:g} "
                                         f"min, seed {seed})", ImageSet.Kind.GENERATED)
        baseline = self.trained_samples(reference, "vae", options["vae_minutes"], options["samples"], seed + 1, user,
                                        f"baseline {tag} (VAE, {options['vae_minutes']:g} min, seed {seed + 1})",
                                        ImageSet.Kind.BASELINE)
        audit = Audit.objects.create(
            organisation=organisation, name=f"demo audit {tag}", created_by=user,
            generated_set=generated, reference_set=reference, baseline_set=baseline, include_copy_baseline=True,
            seed=seed, target_phototype={"kind": "uniform"},
        )
        self.step(f"running audit #{audit.pk} (eager: every stage in this process)")
        with transaction.atomic():
            pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
        audit.refresh_from_db()
        if audit.status != Audit.Status.SUCCEEDED:
            raise CommandError(f"audit #{audit.pk} {audit.status}: {audit.error}")
        report = audit.reports.order_by("-version").first()
        verdicts = (audit.results.get(stage="report").data or {}).get("criteria", [])
        self.step(f"audit finished (features in {audit.feature_precision}: DERMAUDIT_FEATURE_PRECISION="
                  f"{settings.DERMAUDIT_FEATURE_PRECISION}); acceptance criteria:")
        for row in verdicts:
            outcome = {True: "met", False: "not met", None: "not measured"}
            controls = ", ".join(f"{c['kind']} {'waived' if c.get('waived') else outcome[c['ok']]}"
                                 for c in row.get("controls", []))
            self.stdout.write(f"  {row['status']:<4} {row['name']:<24} {row['value_text']:>10}  {row['threshold_text']:<9}"
                              f"  controls: {controls or row.get('controls_note') or '—'}")
            if row["status"] == "N/A" and row.get("reason"):
                self.stdout.write(f"       {row['reason']}")
        self.stdout.write(f"\nReport (PDF): {report.pdf_path}\nJSON twin:    {report.json_path}\nPDF SHA-256:  {report.pdf_sha256}")

    def trained_samples(self, reference, kind, minutes, n, seed, user, name, set_kind) -> ImageSet:
        conditional = {"condition_label": "diagnosis"} if kind == "cdcgan" else {}
        run = GeneratorRun.objects.create(organisation=reference.organisation, created_by=user, kind=kind,
                                          reference_set=reference, seed=seed, max_seconds=minutes * 60,
                                          config={"image_size": 64}, **conditional)
        self.step(f"training {kind} for {minutes:g} min on {reference.images.count()} images")
        run = train_generator(run)
        self.step(f"{kind}: {run.message}; checkpoint {run.checkpoint_sha256[:16]}…")
        image_set = sample_to_image_set(run, n, seed=seed, name=name, user=user)
        ImageSet.objects.filter(pk=image_set.pk).update(kind=set_kind)
        image_set.refresh_from_db()
        return image_set
