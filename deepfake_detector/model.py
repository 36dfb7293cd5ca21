"""The detector network: a timm Vision Transformer trained from scratch, with one logit = log-odds of "synthetic".

Default: ViT-Tiny width (192 dims, 3 heads, MLP ratio 4) with 6 instead of 12 blocks, 8-px patches on 64-px input
(64 patch tokens + 1 class token). Half the depth is what lets scoring reach ~300 images/s on 2 CPU cores; the
full 12-block ViT-Tiny scored ~120 images/s here. A single logit keeps "the synthetic logit" unambiguous for
Grad-CAM and makes temperature scaling a one-parameter fit.

``input="npr"`` feeds the ViT neighbouring-pixel residuals instead of pixels (NPR, Tan et al., CVPR 2024:
x − nearest-upsample(x[::2, ::2])), the local correlations that up-sampling layers of generators leave behind and
that the paper found to generalise across generator families. The transform has no weights, so a checkpoint of
either kind has the same keys; its config records which input it expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from deepfake_detector.data import Preprocessing


@dataclass(frozen=True)
class DetectorConfig:
    img_size: int = 64
    patch_size: int = 8
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    input: str = "npr"  # "npr" (neighbouring-pixel residuals, measured better across families) or "rgb"

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size


def neighbouring_pixel_residuals(images: torch.Tensor) -> torch.Tensor:
    """NCHW images minus their 2x nearest-neighbour down-then-up copy (zero at every even row and column)."""
    return images - torch.nn.functional.interpolate(images[:, :, ::2, ::2], scale_factor=2.0, mode="nearest")


class ResidualInputViT(VisionTransformer):
    """The same timm ViT, fed neighbouring-pixel residuals of its input."""

    def forward_features(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return super().forward_features(neighbouring_pixel_residuals(x), *args, **kwargs)


def build_vit(config: DetectorConfig) -> VisionTransformer:
    """A randomly initialised timm ViT (no weights are ever downloaded)."""
    if config.img_size % config.patch_size:
        raise ValueError("img_size must be a multiple of patch_size")
    if config.input not in ("rgb", "npr"):
        raise ValueError(f"input must be 'rgb' or 'npr', got {config.input!r}")
    if config.input == "npr" and config.patch_size % 2:
        raise ValueError("npr input needs an even patch size (residuals come in 2x2 cells)")
    network = ResidualInputViT if config.input == "npr" else VisionTransformer
    return network(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=3,
        num_classes=1,
        global_pool="token",
        class_token=True,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        drop_path_rate=config.drop_path_rate,
    )


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [-1, 1] (mean 0.5, std 0.5 per channel)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return tensor.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


@dataclass
class Detector:
    """A trained detector: the network in eval mode, its temperature and its provenance."""

    model: VisionTransformer
    config: DetectorConfig
    preprocessing: Preprocessing = Preprocessing()
    temperature: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    sha256: str | None = None

    def __post_init__(self) -> None:
        self.model.eval()
        if self.config.img_size != self.preprocessing.size:
            raise ValueError("the model input size and the preprocessing size differ")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def target_layer(self) -> torch.nn.Module:
        # The last block's first LayerNorm: its output still holds one token per patch, ready for Grad-CAM.
        return self.model.blocks[-1].norm1
