"""Small real training sets from isic-uda1, decoded once per session."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from auditor.generation.baselines import TrainConfig, TrainingImages, encode_class_labels, load_training_images

SUBSET_SIZE = 48


def isic_subset_paths_and_diagnoses(isic_dir: Path, count: int) -> tuple[list[Path], list[str]]:
    with open(isic_dir / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    return [isic_dir / row["file"] for row in rows], [row["diagnosis"] for row in rows]


@pytest.fixture(scope="session")
def isic_small(isic_dir: Path) -> TrainingImages:
    """48 labelled isic-uda1 images at 32 px: enough for a few real training steps in well under a second."""
    paths, diagnoses = isic_subset_paths_and_diagnoses(isic_dir, SUBSET_SIZE)
    labels, class_names = encode_class_labels(diagnoses)
    return load_training_images(paths, image_size=32, labels=labels, class_names=class_names)


def tiny_config(kind: str, **overrides: object) -> TrainConfig:
    """The real training code at 32 px and small widths, so the tests measure behaviour, not arithmetic."""
    values: dict[str, object] = dict(
        kind=kind, image_size=32, batch_size=16, ngf=16, ndf=16, z_dim=32, max_steps=3, progress_every=1, num_threads=1
    )
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]
