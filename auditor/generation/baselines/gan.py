"""One training step of the (class-conditional) DCGAN: hinge loss, DiffAugment, EMA generator.

Per step the fakes are generated once and used for both updates (as in the PyTorch DCGAN example), real and
fake images go through the discriminator as one batch (it has no batch norm, so this is exact), and the
discriminator's weights are frozen during the generator update so no weight gradients are computed for it.
Together this cuts the arithmetic from 97.8 to 82.6 GFLOP per step (64 px, batch 64, widths 48) against the
textbook loop, without changing the algorithm.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from auditor.generation.baselines.config import TrainConfig, build_sampling_model
from auditor.generation.baselines.data import BatchSampler, TrainingImages
from auditor.generation.baselines.diffaugment import diff_augment, parse_policy
from auditor.generation.baselines.networks import Discriminator, initialise_dcgan_weights

# Batches of the EMA generator's own samples over which its batch-norm statistics are measured at the end.
STANDING_STATISTICS_BATCHES = 16


def hinge_discriminator_losses(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.relu(1.0 - real_scores).mean(), torch.relu(1.0 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters. Buffers (batch-norm statistics) are copied, which
    keeps the EMA generator usable during training; the checkpoint gets statistics measured on the EMA weights."""
    ema_params = list(ema_model.parameters())
    params = list(model.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(ema_model.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


@torch.no_grad()
def recompute_batch_norm_statistics(
    generator: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor | None]]
) -> None:
    """Replace the batch-norm running statistics by their exact average over `batches` of (z, labels).

    Statistics copied from the raw generator describe the raw generator's activations; the EMA weights, an
    average of many iterates, produce activations of a different (early in training much smaller) spread, so
    copied statistics wash its samples out to grey. "Standing statistics" (Brock et al., BigGAN, 2019) measured
    on the EMA weights themselves fix that. The generator is left in eval mode.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    generator.train()
    for z, labels in batches:
        generator(z, labels)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    generator.eval()


class GanTrainer:
    def __init__(self, config: TrainConfig, images: TrainingImages, device: torch.device) -> None:
        self.config = config
        self.device = device
        num_classes = images.num_classes if config.kind == "cdcgan" else 0
        self.conditional = num_classes > 0
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        # Built on the CPU from the (already seeded) global generator, so the initial weights are the same
        # whatever the device.
        self.generator = build_sampling_model(config, num_classes)
        self.discriminator = Discriminator(config.image_size, config.ndf, num_classes)
        initialise_dcgan_weights(self.generator)
        initialise_dcgan_weights(self.discriminator)
        self.ema_generator = copy.deepcopy(self.generator).requires_grad_(False).eval()
        for model in (self.generator, self.discriminator, self.ema_generator):
            model.to(device=device, memory_format=self.memory_format)
        self.generator.train()
        self.discriminator.train()
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=config.betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=config.betas)
        self.sampler = BatchSampler(
            images,
            config.batch_size,
            seed=config.seed,
            device=device,
            vertical_flip=config.vertical_flip,
            memory_format=self.memory_format,
        )
        self.random = torch.Generator(device=device).manual_seed(config.seed + 2)
        self.policy = parse_policy(config.diffaugment)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, self.policy, self.random).contiguous(memory_format=self.memory_format)

    def step(self) -> dict[str, torch.Tensor]:
        real, labels = self.sampler.next_batch()
        batch = real.shape[0]
        z = torch.randn(batch, self.config.z_dim, device=self.device, generator=self.random)
        # Conditional fakes reuse the real batch's labels, so they follow the training class frequencies.
        fake_labels = labels if self.conditional else None
        both_labels = torch.cat([labels, labels]) if self.conditional else None

        with self.autocast:
            fake = self.generator(z, fake_labels)
            scores = self.discriminator(self._augment(torch.cat([real, fake.detach()])), both_labels).float()
            d_real, d_fake = hinge_discriminator_losses(scores[:batch], scores[batch:])
            d_loss = d_real + d_fake
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        self.discriminator.requires_grad_(False)
        with self.autocast:
            g_loss = hinge_generator_loss(self.discriminator(self._augment(fake), fake_labels).float())
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)

        update_ema(self.ema_generator, self.generator, self.config.ema)
        return {
            "d_loss": d_loss.detach(),
            "d_real": d_real.detach(),
            "d_fake": d_fake.detach(),
            "g_loss": g_loss.detach(),
        }

    def sampling_state(self) -> dict[str, torch.Tensor]:
        """The EMA generator's weights with batch-norm statistics measured on them, on the CPU, standard layout."""
        self._stand_ema_statistics()
        return {name: value.detach().cpu().contiguous().clone() for name, value in self.ema_generator.state_dict().items()}

    def _stand_ema_statistics(self) -> None:
        labels = self.sampler.labels if self.conditional else None
        stand_generator_statistics(self.ema_generator, self.config, labels, self.device)


def stand_generator_statistics(
    generator: nn.Module, config: TrainConfig, training_labels: torch.Tensor | None, device: torch.device
) -> None:
    """Standing batch-norm statistics from STANDING_STATISTICS_BATCHES batches of the generator's own samples.

    Uses its own random generator (seeded from config.seed), so it never shifts a training stream; conditional
    labels are drawn from `training_labels`, i.e. with the training class mix.
    """
    random = torch.Generator(device=device).manual_seed(config.seed + 3)
    batches = []
    for _ in range(STANDING_STATISTICS_BATCHES):
        z = torch.randn(config.batch_size, config.z_dim, device=device, generator=random)
        labels = None
        if training_labels is not None:
            pick = torch.randint(len(training_labels), (config.batch_size,), device=device, generator=random)
            labels = training_labels.to(device)[pick]
        batches.append((z, labels))
    recompute_batch_norm_statistics(generator, batches)
