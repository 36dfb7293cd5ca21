"""Reference generators for audits: DCGAN, class-conditional DCGAN and a convolutional VAE (pure torch).

Typical use (what the service's Celery task does)::

    images = load_training_images(paths, image_size=64, labels=labels, class_names=names, manifest_sha256=h)
    checkpoint = train(TrainConfig(kind="cdcgan", max_seconds=600), images, progress=report, should_stop=cancelled)
    sha256 = save_checkpoint(checkpoint, path)
    batch = sample(load_checkpoint(path, sha256), 500, seed=1, class_counts={0: 250, 1: 250})
"""
from auditor.generation.baselines.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointFormatError,
    CheckpointIntegrityError,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from auditor.generation.baselines.config import GENERATOR_KINDS, TrainConfig, TrainProgress
from auditor.generation.baselines.data import (
    TrainingImages,
    decode_and_resize,
    encode_class_labels,
    load_training_images,
)
from auditor.generation.baselines.sampling import SampleBatch, allocate_class_counts, sample
from auditor.generation.baselines.training import train

__all__ = [
    "GENERATOR_KINDS",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointIntegrityError",
    "SampleBatch",
    "TrainConfig",
    "TrainProgress",
    "TrainingImages",
    "allocate_class_counts",
    "decode_and_resize",
    "encode_class_labels",
    "file_sha256",
    "load_checkpoint",
    "load_training_images",
    "sample",
    "save_checkpoint",
    "train",
]
