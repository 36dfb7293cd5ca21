"""Differentiable Augmentation (Zhao et al., NeurIPS 2020) for data-efficient GAN training.

Semantics follow the authors' reference implementation (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py):
colour = brightness + saturation + contrast, translation by up to 1/8 of the side with zero fill, cutout of a
square half the side. Differences: every random draw comes from an explicit `torch.Generator` (so a training
run is reproducible from its seed), and translation/cutout are written as two gathers and a broadcast mask
instead of meshgrid fancy-indexing, which keeps the per-step Python and indexing overhead small.

Inputs are float images in [-1, 1], shape (B, 3, H, W). The same policy must be applied to real and fake
images before every discriminator call, for both the D and the G update.
"""
from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> ('color', 'translation', 'cutout'); '' means no augmentation."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policies {unknown}; known: {POLICIES}")
    return names


def _uniform(batch: int, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, 1, 1, 1, dtype=like.dtype, device=like.device, generator=generator)


def random_color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    batch = x.shape[0]
    x = x + (_uniform(batch, x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(batch, x, generator) * 2.0) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(batch, x, generator) + 0.5) + mean  # contrast


def random_translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    batch, channels, height, width = x.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (batch, 1, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-shift_x, shift_x + 1, (batch, 1, 1, 1), device=x.device, generator=generator)
    # Pad by one zero pixel and clamp source indices into the pad: pixels shifted in from outside are zero.
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(height, device=x.device).view(1, 1, height, 1) + dy + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=x.device).view(1, 1, 1, width) + dx + 1).clamp(0, width + 1)
    shifted_rows = padded.gather(2, rows.expand(batch, channels, height, width + 2))
    return shifted_rows.gather(3, cols.expand(batch, channels, height, width))


def random_cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    batch, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    # Centre drawn as in the reference code, so the square may hang over the border (then it is clipped).
    centre_y = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1, 1), device=x.device, generator=generator)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1, 1), device=x.device, generator=generator)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    rows = torch.arange(height, device=x.device).view(1, 1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).to(x.dtype)


_AUGMENTATIONS = {"color": random_color, "translation": random_translation, "cutout": random_cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Apply the policies in order; each image in the batch gets its own random parameters."""
    for name in policy:
        x = _AUGMENTATIONS[name](x, generator)
    return x
