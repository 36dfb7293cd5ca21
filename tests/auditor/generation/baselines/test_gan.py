from __future__ import annotations

import copy

import torch

from auditor.generation.baselines.gan import recompute_batch_norm_statistics, update_ema
from auditor.generation.baselines.networks import Generator


def test_standing_statistics_are_the_average_batch_statistics_of_the_generators_own_activations() -> None:
    torch.manual_seed(0)
    generator = Generator(z_dim=8, image_size=32, ngf=4)
    seen: list[torch.Tensor] = []
    hook = generator.stack.project_norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    random = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 8, generator=random), None) for _ in range(5)]
    recompute_batch_norm_statistics(generator, batches)
    hook.remove()
    norm = generator.stack.project_norm
    expected_mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen]).mean(0)
    expected_var = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in seen]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norm.running_var, expected_var, rtol=1e-5, atol=1e-6)
    assert norm.momentum == 0.1 and not generator.training


def test_ema_averages_parameters_and_copies_buffers() -> None:
    torch.manual_seed(0)
    model = Generator(z_dim=8, image_size=32, ngf=4)
    ema = copy.deepcopy(model)
    before = [p.detach().clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for b in model.buffers():
            if b.is_floating_point():
                b.add_(3.0)
    update_ema(ema, model, decay=0.9)
    for old, new, target in zip(before, ema.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        assert torch.equal(ema_buffer, buffer)
