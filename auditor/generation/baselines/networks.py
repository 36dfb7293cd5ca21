"""DCGAN-style generator, spectral-normalised discriminator and a small convolutional VAE.

Layout follows Radford et al. 2016 (DCGAN): 4x4 strided (transposed) convolutions doubling or halving the
resolution each block, batch norm in the generator only, LeakyReLU(0.2) in the discriminator. The discriminator
is spectral-normalised (Miyato et al. 2018) and, when class-conditional, a projection discriminator (Miyato &
Koyama 2018): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# The smallest feature map the stacks start from / end at.
BASE_RESOLUTION = 4
SUPPORTED_IMAGE_SIZES = (32, 64, 128)


def number_of_resampling_blocks(image_size: int) -> int:
    """How many x2 up- (or down-) sampling blocks lie between 4x4 and `image_size`."""
    if image_size not in SUPPORTED_IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {image_size}")
    return int(math.log2(image_size // BASE_RESOLUTION))


def _width_at_depth(base_width: int, depth_from_image: int) -> int:
    # DCGAN doubles the channel count each time the resolution halves, capped at 8x the base width.
    return base_width * min(2**depth_from_image, 8)


class UpsamplingStack(nn.Module):
    """z (+ optional class embedding) -> image in [-1, 1]. Shared by the GAN generator and the VAE decoder."""

    def __init__(self, latent_dim: int, image_size: int, width: int) -> None:
        super().__init__()
        blocks = number_of_resampling_blocks(image_size)
        bottom_width = _width_at_depth(width, blocks - 1)
        self.bottom_width = bottom_width
        # A dense projection to 4x4 is the same as DCGAN's 1x1 -> 4x4 transposed convolution.
        self.project = nn.Linear(latent_dim, bottom_width * BASE_RESOLUTION**2, bias=False)
        self.project_norm = nn.BatchNorm2d(bottom_width)
        layers: list[nn.Module] = []
        for depth in range(blocks - 1, 0, -1):
            c_in, c_out = _width_at_depth(width, depth), _width_at_depth(width, depth - 1)
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = self.project(latent).view(-1, self.bottom_width, BASE_RESOLUTION, BASE_RESOLUTION)
        h = torch.relu(self.project_norm(h))
        return self.body(h)


class Generator(nn.Module):
    """DCGAN generator; with `num_classes` it is conditioned by concatenating a learned class embedding to z."""

    def __init__(self, z_dim: int, image_size: int, ngf: int, num_classes: int = 0, embed_dim: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.class_embedding = nn.Embedding(num_classes, embed_dim) if num_classes else None
        latent_dim = z_dim + (embed_dim if num_classes else 0)
        self.stack = UpsamplingStack(latent_dim, image_size, ngf)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.class_embedding is not None:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            z = torch.cat([z, self.class_embedding(labels)], dim=1)
        return self.stack(z)


class DownsamplingStack(nn.Module):
    """image -> (B, C, 4, 4) features. Spectral norm is optional so the VAE encoder can reuse the layout."""

    def __init__(self, image_size: int, width: int, *, spectral: bool, batch_norm: bool) -> None:
        super().__init__()
        blocks = number_of_resampling_blocks(image_size)
        wrap = spectral_norm if spectral else (lambda module: module)
        layers: list[nn.Module] = []
        c_in = 3
        for depth in range(blocks):
            c_out = _width_at_depth(width, depth)
            layers.append(wrap(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm)))
            if batch_norm and depth > 0:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class Discriminator(nn.Module):
    """Spectral-normalised DCGAN discriminator with global sum pooling; projection head when conditional."""

    def __init__(self, image_size: int, ndf: int, num_classes: int = 0) -> None:
        super().__init__()
        self.features = DownsamplingStack(image_size, ndf, spectral=True, batch_norm=False)
        width = self.features.out_channels
        self.head = spectral_norm(nn.Linear(width, 1))
        self.class_projection = spectral_norm(nn.Embedding(num_classes, width)) if num_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(images).sum(dim=(2, 3))
        score = self.head(phi).squeeze(1)
        if self.class_projection is not None:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            score = score + (self.class_projection(labels) * phi).sum(dim=1)
        return score


class ConvVAE(nn.Module):
    """Small convolutional VAE (Kingma & Welling 2014) with the DCGAN layouts as encoder and decoder."""

    def __init__(self, z_dim: int, image_size: int, encoder_width: int, decoder_width: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = DownsamplingStack(image_size, encoder_width, spectral=False, batch_norm=True)
        flat = self.encoder.out_channels * BASE_RESOLUTION**2
        self.to_mean = nn.Linear(flat, z_dim)
        self.to_log_variance = nn.Linear(flat, z_dim)
        self.decoder = UpsamplingStack(z_dim, image_size, decoder_width)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(images).flatten(1)
        return self.to_mean(h), self.to_log_variance(h).clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, log_variance = self.encode(images)
        z = mean + noise * torch.exp(0.5 * log_variance)
        return self.decode(z), mean, log_variance


def initialise_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolution weights and N(1, 0.02) batch-norm scales, as in the DCGAN paper."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = layer.parametrizations.weight.original if hasattr(layer, "parametrizations") else layer.weight
            nn.init.normal_(weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
