"""Checkpoints: the sampling network plus everything needed to say where it came from.

A checkpoint file is a `torch.save` archive holding only tensors and one JSON string of metadata, so it loads
with `weights_only=True` (no pickled code runs). Its identity is the SHA-256 of the file's bytes: `save_checkpoint`
returns it, the caller stores it, and `load_checkpoint` refuses a file whose bytes hash to anything else, before
deserialising anything.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL
import torch

from auditor.generation.baselines.config import TrainConfig
from metrics.atomic_files import write_file_atomically

CHECKPOINT_FORMAT = "dermaudit-baseline-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

StopReason = Literal["max_steps", "max_seconds", "cancelled"]


class CheckpointError(Exception):
    """A checkpoint cannot be used."""


class CheckpointIntegrityError(CheckpointError):
    """The file's SHA-256 is not the one expected: it was altered, truncated or is another file."""


class CheckpointFormatError(CheckpointError):
    """The file hashes as expected but is not a baseline checkpoint this code can read."""


def software_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "platform": platform.platform(),
        "checkpoint_format": str(CHECKPOINT_FORMAT_VERSION),
    }


@dataclass
class Checkpoint:
    config: TrainConfig
    model_state: dict[str, torch.Tensor]  # EMA generator (GANs) or whole VAE, CPU tensors
    class_names: tuple[str, ...] | None
    training_class_counts: tuple[int, ...] | None  # images per class in the training set (conditional runs)
    manifest_sha256: str  # identity of the training set, as given by the caller
    preprocessing: str  # how training images were decoded and resized
    training_image_count: int
    steps: int
    elapsed_seconds: float
    stop_reason: StopReason
    loss_history: list[dict[str, float]] = field(default_factory=list)  # {"step", "elapsed_seconds", losses...}
    software: dict[str, str] = field(default_factory=software_versions)
    device: str = "cpu"  # where it was trained, e.g. "cpu" or "cuda (NVIDIA H100 80GB HBM3)"
    sha256: str | None = None  # SHA-256 of the file it was saved to / loaded from

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def cancelled(self) -> bool:
        return self.stop_reason == "cancelled"

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def metadata(self) -> dict[str, Any]:
        """Everything but the weights, as JSON-ready values (what the service can store beside the file)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "kind": self.kind,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "class_names": None if self.class_names is None else list(self.class_names),
            "training_class_counts": None if self.training_class_counts is None else list(self.training_class_counts),
            "manifest_sha256": self.manifest_sha256,
            "preprocessing": self.preprocessing,
            "training_image_count": self.training_image_count,
            "steps": self.steps,
            "elapsed_seconds": self.elapsed_seconds,
            "stop_reason": self.stop_reason,
            "loss_history": self.loss_history,
            "software": self.software,
            "device": self.device,
        }


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> str:
    """Write atomically (temporary file + rename) and return the file's SHA-256, also set on `checkpoint.sha256`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "metadata_json": json.dumps(checkpoint.metadata(), sort_keys=True),
        "model_state": {name: tensor.detach().cpu().contiguous() for name, tensor in checkpoint.model_state.items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_file_atomically(path, data)
    checkpoint.sha256 = hashlib.sha256(data).hexdigest()
    return checkpoint.sha256


def load_checkpoint(path: str | Path, expected_sha256: str) -> Checkpoint:
    """Read a checkpoint, refusing it unless its bytes hash to `expected_sha256`.

    Raises CheckpointIntegrityError on a hash mismatch and CheckpointFormatError on a file that is not a
    checkpoint of this format.
    """
    data = Path(path).read_bytes()  # hash and parse the same bytes: no window to swap the file in between
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.strip().lower():
        raise CheckpointIntegrityError(
            f"checkpoint {path} has SHA-256 {actual}, expected {expected_sha256}: refusing to load it"
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        metadata = json.loads(payload["metadata_json"])
        model_state = dict(payload["model_state"])
    except Exception as error:  # any parse failure means "not our format"
        raise CheckpointFormatError(f"{path} is not a readable baseline checkpoint: {error}") from error
    if metadata.get("format") != CHECKPOINT_FORMAT or metadata.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{path}: format {metadata.get('format')!r} v{metadata.get('format_version')!r}, "
            f"expected {CHECKPOINT_FORMAT!r} v{CHECKPOINT_FORMAT_VERSION}"
        )
    class_names = metadata["class_names"]
    class_counts = metadata["training_class_counts"]
    return Checkpoint(
        config=TrainConfig.from_dict(metadata["config"]),
        model_state=model_state,
        class_names=None if class_names is None else tuple(class_names),
        training_class_counts=None if class_counts is None else tuple(class_counts),
        manifest_sha256=metadata["manifest_sha256"],
        preprocessing=metadata["preprocessing"],
        training_image_count=metadata["training_image_count"],
        steps=metadata["steps"],
        elapsed_seconds=metadata["elapsed_seconds"],
        stop_reason=metadata["stop_reason"],
        loss_history=metadata["loss_history"],
        software=metadata["software"],
        device=metadata["device"],
        sha256=actual,
    )
