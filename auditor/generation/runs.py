"""The service around the reference generators (auditor/generation/baselines): train runs, sampling into baseline
image sets, and the copy baseline. The maths lives in auditor.generation.baselines; this module only moves rows and files."""
from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage

from auditor.generation import baselines
from auditor.ingestion.importer import Entry, ingest_entries
from auditor.ingestion.rules import ImageLabels, LabelTable
from auditor.models import GeneratorRun, Image, ImageSet, IngestJob
from auditor.models.training import TrainingStatus

CONDITION_LABELS = ("diagnosis", "fitzpatrick")
PROGRESS_INTERVAL_S = 2.0  # how often progress is written and the cancel flag is read


class GeneratorError(Exception):
    pass


def model_folder(kind: str) -> Path:
    """DERMAUDIT_MODEL_DIR/<kind>/, created on first use (generators and detectors keep checkpoints there)."""
    folder = Path(settings.DERMAUDIT_MODEL_DIR) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _condition_values(images: list[Image], label: str) -> list[str]:
    values = [str(getattr(image, label) or "") for image in images]
    if any(not v for v in values):
        missing = sum(1 for v in values if not v)
        raise GeneratorError(f"{missing} of {len(values)} reference images have no {label!r} label; a conditional "
                             "generator needs every training image labelled")
    return values


def training_images(run: GeneratorRun, image_size: int) -> baselines.TrainingImages:
    images = list(run.reference_set.images.order_by("sha256"))
    if len(images) < 16:
        raise GeneratorError(f"reference set {run.reference_set.name!r} has {len(images)} images; at least 16 are needed")
    labels = class_names = None
    if run.kind == GeneratorRun.Kind.CDCGAN:
        if run.condition_label not in CONDITION_LABELS:
            raise GeneratorError(f"condition_label must be one of {CONDITION_LABELS}")
        labels, class_names = baselines.encode_class_labels(_condition_values(images, run.condition_label))
    return baselines.load_training_images(
        [image.path for image in images], image_size=image_size, labels=labels, class_names=class_names,
        manifest_sha256=run.reference_set.manifest_sha256,
    )


def train_generator(run: GeneratorRun) -> GeneratorRun:
    """Train `run` in this process (a Celery task calls this), writing progress and honouring cancellation."""
    GeneratorRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING, started_at=timezone.now())
    config = baselines.TrainConfig.from_dict(
        {**run.config, "kind": run.kind, "seed": run.seed, "max_seconds": run.max_seconds, "max_steps": run.max_steps}
    )
    images = training_images(run, config.image_size)
    last = {"t": 0.0, "cancel": False}

    def report(progress: baselines.TrainProgress) -> None:
        now = time.monotonic()
        if now - last["t"] < PROGRESS_INTERVAL_S:
            return
        last["t"] = now
        GeneratorRun.objects.filter(pk=run.pk).update(progress={
            "step": progress.step, "elapsed_seconds": round(progress.elapsed_seconds, 2),
            "steps_per_second": round(progress.steps_per_second, 3), "losses": progress.losses,
            "fraction_done": round(progress.fraction_done, 4),
        })
        last["cancel"] = GeneratorRun.objects.filter(pk=run.pk, cancel_requested=True).exists()

    checkpoint = baselines.train(config, images, progress=report, should_stop=lambda: last["cancel"])
    path = model_folder("generators") / f"generator-{run.pk}-{run.kind}.pt"
    sha256 = baselines.save_checkpoint(checkpoint, path)
    final_progress = {
        "step": checkpoint.steps, "elapsed_seconds": round(checkpoint.elapsed_seconds, 2),
        "steps_per_second": round(checkpoint.steps / max(checkpoint.elapsed_seconds, 1e-9), 3),
        "losses": checkpoint.loss_history[-1] if checkpoint.loss_history else {}, "fraction_done": 1.0,
        "stop_reason": checkpoint.stop_reason, "device": checkpoint.device,
    }
    status = TrainingStatus.CANCELLED if checkpoint.cancelled else TrainingStatus.SUCCEEDED
    GeneratorRun.objects.filter(pk=run.pk).update(
        status=status, checkpoint=str(path), checkpoint_sha256=sha256, progress=final_progress, finished_at=timezone.now(),
        message=f"{checkpoint.steps} steps in {checkpoint.elapsed_seconds:.0f} s ({checkpoint.stop_reason})",
    )
    run.refresh_from_db()
    return run


def load_run_checkpoint(run: GeneratorRun) -> baselines.Checkpoint:
    if not run.checkpoint_sha256:
        raise GeneratorError(f"generator run {run.pk} has no checkpoint (status {run.status})")
    return baselines.load_checkpoint(run.checkpoint, run.checkpoint_sha256)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode="RGB").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def sample_to_image_set(run: GeneratorRun, n: int, *, seed: int, name: str | None = None,
                        class_counts: dict[str, int] | None = None, user=None) -> ImageSet:
    """Draw `n` images (or `class_counts` per class name) into a new baseline ImageSet ready to audit."""
    checkpoint = load_run_checkpoint(run)
    counts_by_index = None
    if class_counts is not None:
        if not checkpoint.class_names:
            raise GeneratorError("class_counts given, but this generator is unconditional")
        unknown = set(class_counts) - set(checkpoint.class_names)
        if unknown:
            raise GeneratorError(f"unknown classes {sorted(unknown)}; the generator knows {list(checkpoint.class_names)}")
        counts_by_index = {checkpoint.class_names.index(k): int(v) for k, v in class_counts.items()}
        n = sum(counts_by_index.values())
    batch = baselines.sample(checkpoint, n, seed=seed, class_counts=counts_by_index)
    with transaction.atomic():
        image_set = ImageSet.objects.create(
            organisation=run.reference_set.organisation,
            name=name or f"{run.kind} #{run.pk} samples (seed {seed}, n={n})",
            kind=ImageSet.Kind.BASELINE,
            generator_name=f"DermAudit reference {run.kind.upper()}",
            generator_version=f"run {run.pk}, {checkpoint.steps} steps",
            generator_weights_sha256=run.checkpoint_sha256,
            description=f"Sampled with seed {seed} from a {run.kind} trained on {run.reference_set.name!r} "
                        f"(manifest {run.reference_set.manifest_sha256[:16]}…), {checkpoint.preprocessing}.",
            intended_use="Baseline for audits: a deliberately simple generator measured under the same protocol.",
            created_by=user,
        )
    label_column = run.condition_label or "diagnosis"
    labels: dict[str, ImageLabels] = {}
    entries = []
    for i, array in enumerate(batch.images):
        file_name = f"sample_{i:05d}.png"
        entries.append(Entry(name=file_name, read=lambda a=array: _png(a)))
        if batch.labels is not None and batch.class_names is not None:
            value = batch.class_names[int(batch.labels[i])]
            labels[file_name] = ImageLabels(
                diagnosis=value if label_column == "diagnosis" else "",
                fitzpatrick=int(value) if label_column == "fitzpatrick" else None,
                extra={"generator_class": value},
            )
    job = IngestJob.objects.create(image_set=image_set, created_by=user, source=f"generator run {run.pk}")
    ingest_entries(job, entries, LabelTable(labels, []) if labels else None)
    return image_set


def make_copy_baseline(reference: ImageSet, *, n: int | None = None, seed: int = 0, user=None) -> ImageSet:
    """Reference images submitted as if generated: the memorisation check must flag nearly all of them."""
    rows = list(reference.images.order_by("sha256"))
    if n is not None and n < len(rows):
        chosen = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
        rows = [rows[i] for i in sorted(chosen)]
    suffix = f" (n={len(rows)}, seed {seed})"
    name = f"copy baseline of {reference.name}"[: ImageSet._meta.get_field("name").max_length - len(suffix)] + suffix
    with transaction.atomic():
        image_set = ImageSet.objects.create(
            organisation=reference.organisation, name=name,
            kind=ImageSet.Kind.BASELINE, generator_name="copy baseline",
            description=f"{len(rows)} images of {reference.name!r} re-submitted unchanged (a perfect memoriser).",
            intended_use="Positive control for the memorisation check.", created_by=user,
        )
        copies = []
        for row in rows:
            row.pk = None
            row.image_set = image_set
            copies.append(row)
        Image.objects.bulk_create(copies)
        image_set.refresh_manifest()
    return image_set
