"""DiffAugment against the authors' reference implementation (mit-han-lab/data-efficient-gans,
DiffAugment_pytorch.py), transcribed below with one change: random draws come from a passed generator, in the
same order, so both implementations see the same random parameters."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from auditor.generation.baselines.diffaugment import diff_augment, parse_policy


def reference_color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    x = x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, generator=g) - 0.5)
    x_mean = x.mean(dim=1, keepdim=True)
    x = (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, generator=g) * 2) + x_mean
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, generator=g) + 0.5) + x_mean


def reference_translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], generator=g)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], generator=g)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(x.size(2)), torch.arange(x.size(3)), indexing="ij"
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def reference_cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = torch.randint(0, x.size(2) + (1 - cutout_size[0] % 2), size=[x.size(0), 1, 1], generator=g)
    offset_y = torch.randint(0, x.size(3) + (1 - cutout_size[1] % 2), size=[x.size(0), 1, 1], generator=g)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(cutout_size[0]), torch.arange(cutout_size[1]), indexing="ij"
    )
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


REFERENCE = {"color": reference_color, "translation": reference_translation, "cutout": reference_cutout}


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
@pytest.mark.parametrize("size", [32, 63])  # odd size exercises the cutout centre range
def test_matches_reference_implementation(policy: str, size: int) -> None:
    x = torch.rand(32, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected, g_reference = x, torch.Generator().manual_seed(7)
    for name in parse_policy(policy):
        expected = REFERENCE[name](expected, g_reference)
    actual = diff_augment(x, parse_policy(policy), torch.Generator().manual_seed(7))
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)
    assert not torch.equal(actual, x)


def test_gradients_flow_through_every_policy() -> None:
    x = torch.zeros(4, 3, 16, 16).normal_(generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    diff_augment(x, parse_policy("color,translation,cutout"), torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_unknown_policy_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        parse_policy("color,rotation")
