"""Draw images from a checkpoint: reproducible from (checkpoint, seed), whatever the device or batch size."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from auditor.generation.baselines.checkpoint import Checkpoint
from auditor.generation.baselines.config import build_sampling_model, resolve_device
from auditor.generation.baselines.data import to_uint8_nhwc


@dataclass(frozen=True)
class SampleBatch:
    images: np.ndarray  # uint8 (N, H, W, 3), RGB
    labels: np.ndarray | None  # int64 (N,) class indices for conditional checkpoints, else None
    class_names: tuple[str, ...] | None
    seed: int
    checkpoint_sha256: str | None

    def __len__(self) -> int:
        return len(self.images)


def load_sampling_model(checkpoint: Checkpoint, device: str | torch.device = "cpu") -> nn.Module:
    """The checkpoint's generator (or VAE) in eval mode: batch norm uses stored statistics, so an image does
    not depend on the other images in its batch."""
    model = build_sampling_model(checkpoint.config, checkpoint.num_classes)
    model.load_state_dict(checkpoint.model_state)
    return model.to(device).eval().requires_grad_(False)


def latents_for_seed(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """N(0, I) latents of shape (n, z_dim), drawn on the CPU: image i gets the same noise on every device and
    for every n >= i + 1."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def allocate_class_counts(n: int, class_shares: np.ndarray) -> dict[int, int]:
    """Split n over classes in proportion to `class_shares` (largest remainder; ties to the lower index)."""
    shares = np.asarray(class_shares, dtype=np.float64)
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = n - int(counts.sum())
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:remainder]:
        counts[i] += 1
    return {i: int(c) for i, c in enumerate(counts)}


def _labels_for(checkpoint: Checkpoint, n: int, class_counts: Mapping[int, int] | None) -> torch.Tensor | None:
    if checkpoint.num_classes == 0:
        if class_counts is not None:
            raise ValueError(f"a {checkpoint.kind} checkpoint is unconditional: class_counts must be None")
        return None
    if class_counts is None:
        assert checkpoint.training_class_counts is not None
        class_counts = allocate_class_counts(n, np.asarray(checkpoint.training_class_counts))
    for label, count in class_counts.items():
        if not 0 <= int(label) < checkpoint.num_classes:
            raise ValueError(f"class {label} is not one of 0..{checkpoint.num_classes - 1} ({checkpoint.class_names})")
        if int(count) < 0:
            raise ValueError(f"class {label}: negative count {count}")
    if sum(int(c) for c in class_counts.values()) != n:
        raise ValueError(f"class_counts sum to {sum(class_counts.values())}, but n = {n}")
    # Grouped by class, ascending: the i-th image of a class gets the same latent for the same seed and n.
    return torch.cat(
        [torch.full((int(class_counts[label]),), int(label), dtype=torch.int64) for label in sorted(class_counts)]
    )


@torch.no_grad()
def generate(model: nn.Module, kind: str, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Latents (and labels) -> images in [-1, 1], on the model's device."""
    if kind == "vae":
        return model.decode(latents)
    return model(latents, labels)


def sample(
    checkpoint: Checkpoint,
    n: int,
    *,
    seed: int,
    class_counts: Mapping[int, int] | None = None,
    batch_size: int = 250,
    device: str = "auto",
) -> SampleBatch:
    """Draw n images. For a conditional checkpoint, `class_counts` ({class index: count}, summing to n) fixes the
    class mix; without it, classes follow the training-set frequencies. Images come back grouped by class."""
    if n < 0:
        raise ValueError("n must be >= 0")
    labels = _labels_for(checkpoint, n, class_counts)
    resolved = resolve_device(device)
    model = load_sampling_model(checkpoint, resolved)
    latents = latents_for_seed(n, checkpoint.config.z_dim, seed)
    size = checkpoint.config.image_size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        z = latents[start:stop].to(resolved)
        batch_labels = None if labels is None else labels[start:stop].to(resolved)
        images[start:stop] = to_uint8_nhwc(generate(model, checkpoint.kind, z, batch_labels))
    return SampleBatch(
        images=images,
        labels=None if labels is None else labels.numpy(),
        class_names=checkpoint.class_names,
        seed=seed,
        checkpoint_sha256=checkpoint.sha256,
    )
