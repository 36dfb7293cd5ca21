"""One training step of the convolutional VAE (Kingma & Welling 2014).

Loss per image: sum of squared errors over pixels in [-1, 1] (a Gaussian likelihood with fixed variance 1/2)
plus `vae_kl_weight` times KL(q(z|x) || N(0, I)); both averaged over the batch.
"""
from __future__ import annotations

import torch

from auditor.generation.baselines.config import TrainConfig, build_sampling_model
from auditor.generation.baselines.data import BatchSampler, TrainingImages
from auditor.generation.baselines.networks import initialise_dcgan_weights


def gaussian_kl_to_standard_normal(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per row, summed over latent dimensions."""
    return 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).sum(dim=1)


class VaeTrainer:
    def __init__(self, config: TrainConfig, images: TrainingImages, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = build_sampling_model(config, num_classes=0)
        initialise_dcgan_weights(self.model)
        self.model.to(device=device, memory_format=self.memory_format).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.vae_lr, betas=config.vae_betas)
        self.sampler = BatchSampler(
            images,
            config.batch_size,
            seed=config.seed,
            device=device,
            vertical_flip=config.vertical_flip,
            memory_format=self.memory_format,
        )
        self.random = torch.Generator(device=device).manual_seed(config.seed + 2)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16")

    def step(self) -> dict[str, torch.Tensor]:
        real, _ = self.sampler.next_batch()
        noise = torch.randn(real.shape[0], self.config.z_dim, device=self.device, generator=self.random)
        with self.autocast:
            reconstruction, mean, log_variance = self.model(real, noise)
        reconstruction_loss = (reconstruction.float() - real).pow(2).sum(dim=(1, 2, 3)).mean()
        kl = gaussian_kl_to_standard_normal(mean.float(), log_variance.float()).mean()
        loss = reconstruction_loss + self.config.vae_kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), "reconstruction": reconstruction_loss.detach(), "kl": kl.detach()}

    def sampling_state(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().cpu().contiguous().clone() for name, value in self.model.state_dict().items()}
