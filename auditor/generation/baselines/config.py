"""What a baseline training run is: its configuration, its progress reports, and the networks it builds."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from auditor.generation.baselines.diffaugment import parse_policy
from auditor.generation.baselines.networks import ConvVAE, Generator, number_of_resampling_blocks

GeneratorKind = Literal["dcgan", "cdcgan", "vae"]
GENERATOR_KINDS: tuple[str, ...] = ("dcgan", "cdcgan", "vae")
GAN_KINDS: tuple[str, ...] = ("dcgan", "cdcgan")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run. Defaults are the ones measured to work on a few hundred dermoscopy images:
    Adam with beta1 = 0 plus an EMA generator, spectral-normalised discriminator, hinge loss, DiffAugment, and
    training images mirrored both ways."""

    kind: GeneratorKind
    image_size: int = 64  # 32, 64 or 128
    batch_size: int = 64
    ngf: int = 48  # base width of the generator (and of the VAE decoder)
    ndf: int = 48  # base width of the discriminator (and of the VAE encoder)
    z_dim: int = 128
    class_embed_dim: int = 32  # cdcgan: size of the class embedding concatenated to z
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    ema: float = 0.99  # decay of the EMA generator used for sampling; 0 disables averaging
    diffaugment: str = "color,translation,cutout"
    # Up-down flips on top of the always-on left-right ones: dermoscopy has no canonical orientation (measured
    # effect on isic-uda1 in the README's reference-generator results).
    vertical_flip: bool = True
    vae_lr: float = 1e-3
    vae_betas: tuple[float, float] = (0.9, 0.999)
    vae_kl_weight: float = 1.0  # weight of KL against the per-image sum of squared errors (images in [-1, 1])
    seed: int = 0
    max_steps: int | None = None
    max_seconds: float | None = None
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    num_threads: int | None = None  # CPU intra-op threads for the run; None leaves torch's setting
    channels_last: bool = True  # measured faster for these networks on CPU (oneDNN) and GPU (cuDNN)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = autocast; weights and optimiser stay float32
    progress_every: int = 10  # steps between progress reports (and loss-history entries)

    def __post_init__(self) -> None:
        if self.kind not in GENERATOR_KINDS:
            raise ValueError(f"kind must be one of {GENERATOR_KINDS}, got {self.kind!r}")
        number_of_resampling_blocks(self.image_size)  # validates the size
        parse_policy(self.diffaugment)
        if self.max_steps is None and self.max_seconds is None:
            raise ValueError("give max_steps, max_seconds or both: a run needs a budget")
        if self.max_steps is not None and self.max_steps < 0:
            raise ValueError("max_steps must be >= 0")
        if self.max_seconds is not None and self.max_seconds < 0:
            raise ValueError("max_seconds must be >= 0")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (batch norm)")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError("ema must be in [0, 1)")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError("precision must be 'fp32' or 'bf16'")
        if self.progress_every < 1:
            raise ValueError("progress_every must be >= 1")

    @property
    def is_gan(self) -> bool:
        return self.kind in GAN_KINDS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        values = dict(values)
        for name in ("betas", "vae_betas"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


@dataclass(frozen=True)
class TrainProgress:
    """One progress report. `losses` are means over the steps since the previous report."""

    step: int
    elapsed_seconds: float
    steps_per_second: float
    losses: dict[str, float] = field(default_factory=dict)
    max_steps: int | None = None
    max_seconds: float | None = None

    @property
    def fraction_done(self) -> float:
        """Progress towards whichever budget runs out first, in [0, 1]."""
        fractions = []
        if self.max_steps:
            fractions.append(self.step / self.max_steps)
        if self.max_seconds:
            fractions.append(self.elapsed_seconds / self.max_seconds)
        return min(1.0, max(fractions)) if fractions else 1.0


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved


def build_sampling_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """The network a checkpoint stores: the (EMA) generator for GANs, the whole VAE for the VAE."""
    if config.kind == "vae":
        return ConvVAE(config.z_dim, config.image_size, encoder_width=config.ndf, decoder_width=config.ngf)
    conditional_classes = num_classes if config.kind == "cdcgan" else 0
    return Generator(config.z_dim, config.image_size, config.ngf, conditional_classes, config.class_embed_dim)
