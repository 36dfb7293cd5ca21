"""Checkpoints that carry their provenance and their own content hash.

File layout: ``MAGIC`` line, the payload's SHA-256 (64 hex characters) and a newline, then the payload — a
``torch.save`` of ``{"state_dict": ..., "metadata_json": ...}``. The hash covers weights *and* metadata (seed,
manifests, config, metrics, software versions), so changing any of them is detected. Loading recomputes it and
refuses a mismatch with the embedded hash or with the hash the caller expects (e.g. the one stored in the database).
Payloads are read with ``weights_only=True``: a checkpoint cannot run code.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from deepfake_detector.data import Preprocessing
from metrics.atomic_files import write_file_atomically
from deepfake_detector.model import Detector, DetectorConfig, build_vit, resolve_device

MAGIC = b"DERMAUDIT-DEEPFAKE-DETECTOR v1\n"
FORMAT_VERSION = 1


class CheckpointIntegrityError(ValueError):
    """The checkpoint's bytes do not match its recorded or expected SHA-256."""


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "deepfake_detector_format": str(FORMAT_VERSION)}
    for package in ("torch", "timm", "numpy", "pillow", "scipy", "scikit-learn", "grad-cam"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _payload_bytes(detector: Detector, extra_metrics: dict[str, Any] | None) -> bytes:
    metadata = dict(detector.metadata)
    if extra_metrics:
        metadata["metrics"] = {**metadata.get("metrics", {}), **extra_metrics}
    metadata["model_config"] = asdict(detector.config)
    metadata["preprocessing_config"] = asdict(detector.preprocessing)
    metadata["temperature"] = detector.temperature
    metadata.setdefault("software", software_versions())
    state_dict = {name: tensor.detach().cpu() for name, tensor in detector.model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": state_dict, "metadata_json": json.dumps(metadata, sort_keys=True)}, buffer)
    return buffer.getvalue()


def save_detector(detector: Detector, path: str | Path, *, extra_metrics: dict[str, Any] | None = None) -> str:
    """Write the checkpoint and return its SHA-256 (also set on ``detector.sha256``).

    ``extra_metrics`` (e.g. ``{"test": evaluation.to_dict()}``) are merged into ``metadata["metrics"]``.
    """
    payload = _payload_bytes(detector, extra_metrics)
    digest = hashlib.sha256(payload).hexdigest()
    write_file_atomically(path, MAGIC + digest.encode("ascii") + b"\n" + payload)
    detector.sha256 = digest
    if extra_metrics:
        detector.metadata["metrics"] = {**detector.metadata.get("metrics", {}), **extra_metrics}
    return digest


def load_detector(path: str | Path, expected_sha256: str | None = None, device: str = "auto") -> Detector:
    """Load and verify a checkpoint; raises ``CheckpointIntegrityError`` on any hash mismatch."""
    raw = Path(path).read_bytes()
    header_length = len(MAGIC) + 65
    if not raw.startswith(MAGIC) or len(raw) < header_length or raw[header_length - 1 : header_length] != b"\n":
        raise CheckpointIntegrityError(f"{path} is not a deepfake_detector checkpoint")
    recorded = raw[len(MAGIC) : header_length - 1].decode("ascii", errors="replace")
    payload = raw[header_length:]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != recorded:
        raise CheckpointIntegrityError(f"{path}: content SHA-256 {actual} differs from the recorded {recorded}")
    if expected_sha256 is not None and actual != expected_sha256:
        raise CheckpointIntegrityError(f"{path}: SHA-256 {actual} is not the expected {expected_sha256}")

    contents = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    metadata = json.loads(contents["metadata_json"])
    config = DetectorConfig(**metadata["model_config"])
    model = build_vit(config)
    model.load_state_dict(contents["state_dict"], strict=True)
    model.to(resolve_device(device))
    return Detector(
        model=model,
        config=config,
        preprocessing=Preprocessing(**metadata["preprocessing_config"]),
        temperature=float(metadata["temperature"]),
        metadata=metadata,
        sha256=actual,
    )
