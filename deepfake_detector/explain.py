"""Class-activation maps for the ViT detector (pytorch-grad-cam) and heat-map overlays for the report.

The target layer is the last block's ``norm1``; its output is (batch, 1 + patches, dim). The reshape transform drops
the class token and lays the patch tokens out on their grid so the CAM code can treat them like conv channels.

What is explained: by default the synthetic logit itself. Grad-CAM keeps only positive evidence (a ReLU), so on
real images — where little pushes towards "synthetic" — many maps are exactly zero; ``share_all_zero`` reports how
many. ``target="predicted"`` explains the predicted class instead (the logit where it is positive, its negative —
the log-odds of "real" — where it is not), which gives real images a map of the evidence for "real".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, RandomCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

from deepfake_detector.crops import stitch, tiles
from deepfake_detector.data import encode_for_model, standardise_images
from deepfake_detector.model import Detector, images_to_tensor
from deepfake_detector.scoring import logits_of_encoded

CamMethod = Literal["gradcam", "gradcam++", "eigencam", "random"]
CamTarget = Literal["synthetic", "predicted"]

CAM_CLASSES = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "random": RandomCAM}


class SignedLogitTarget:
    """``sign * logit``: +1 explains "synthetic", -1 explains "real" (the single logit is log-odds of synthetic)."""

    def __init__(self, sign: int) -> None:
        self.sign = float(sign)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return self.sign * model_output[..., 0]


def class_token_dropping_reshape(grid_size: int, prefix_tokens: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix_tokens:, :]
        batch, _, channels = patches.shape
        return patches.reshape(batch, grid_size, grid_size, channels).permute(0, 3, 1, 2)

    return reshape


def make_cam(detector: Detector, method: CamMethod):
    """A pytorch-grad-cam explainer for this detector; use it as a context manager so its hooks are removed."""
    reshape = class_token_dropping_reshape(detector.config.grid_size, detector.model.num_prefix_tokens)
    return CAM_CLASSES[method](model=detector.model, target_layers=[detector.target_layer], reshape_transform=reshape)


def targets_for(logits: np.ndarray, target: CamTarget) -> list[SignedLogitTarget]:
    if target == "synthetic":
        return [SignedLogitTarget(+1) for _ in logits]
    return [SignedLogitTarget(+1 if logit >= 0 else -1) for logit in logits]


@dataclass
class CamResult:
    maps: np.ndarray  # float32 N x H x W in [0, 1], each map min-max scaled by pytorch-grad-cam
    logits: np.ndarray  # float64 N, uncalibrated
    target_signs: np.ndarray  # int N: +1 explained "synthetic", -1 explained "real"
    method: str
    target: str

    @property
    def all_zero(self) -> np.ndarray:
        return self.maps.reshape(len(self.maps), -1).max(axis=1) <= 0.0

    @property
    def share_all_zero(self) -> float:
        return float(self.all_zero.mean()) if len(self.maps) else 0.0


def encoded_inputs(detector: Detector, images: np.ndarray) -> np.ndarray:
    """Both preprocessing steps: what the network actually sees (uint8 NHWC). A native-crop detector sees crops:
    pass its inputs as uint8 N x size x size x 3 crops (e.g. crops.tiles of a window); they get the final encoding."""
    if detector.preprocessing.native:
        size = detector.preprocessing.size
        crops = np.asarray(images)
        if crops.dtype != np.uint8 or crops.shape[1:] != (size, size, 3):
            raise ValueError(f"a native-crop detector explains {size}-px crops (crops.tiles of a window), "
                             f"got {crops.dtype} {crops.shape}")
        return encode_for_model(crops, detector.preprocessing)
    return encode_for_model(standardise_images(images, detector.preprocessing), detector.preprocessing)


def compute_cams(
    detector: Detector,
    images: np.ndarray,
    method: CamMethod = "gradcam",
    target: CamTarget = "synthetic",
    batch_size: int = 32,
) -> CamResult:
    """CAMs at input resolution for uint8 NHWC images (standardised or not)."""
    return cams_of_encoded(detector, encoded_inputs(detector, images), method, target, batch_size)


def cams_of_encoded(
    detector: Detector,
    encoded: np.ndarray,
    method: CamMethod = "gradcam",
    target: CamTarget = "synthetic",
    batch_size: int = 32,
) -> CamResult:
    """CAMs for images that already went through both preprocessing steps."""
    logits = logits_of_encoded(detector, encoded)
    targets = targets_for(logits, target)
    maps = []
    with make_cam(detector, method) as cam:
        for start in range(0, len(encoded), batch_size):
            batch = images_to_tensor(encoded[start : start + batch_size], detector.device)
            maps.append(cam(input_tensor=batch, targets=targets[start : start + batch_size]).astype(np.float32))
    size = detector.preprocessing.size
    return CamResult(
        maps=np.concatenate(maps) if maps else np.zeros((0, size, size), dtype=np.float32),
        logits=logits,
        target_signs=np.array([int(t.sign) for t in targets], dtype=np.int64),
        method=method,
        target=target,
    )


@dataclass(frozen=True)
class OverlayRecord:
    path: str
    index: int  # position in the images passed in
    label: int  # 0 real, 1 synthetic
    probability_synthetic: float
    rank: Literal["most_confident", "least_confident"]


def select_confidence_extremes(labels: np.ndarray, probabilities: np.ndarray, per_class: int) -> list[tuple]:
    """(index, label, rank) for the images of each true class with the highest / lowest P(their true class)."""
    chosen = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        if len(members) == 0:
            continue
        confidence = probabilities[members] if label == 1 else 1.0 - probabilities[members]
        order = members[np.argsort(-confidence, kind="stable")]
        count = min(per_class, len(order) // 2) or 1
        chosen += [(int(i), label, "most_confident") for i in order[:count]]
        chosen += [(int(i), label, "least_confident") for i in order[::-1][:count] if int(i) not in order[:count]]
    return chosen


def save_overlays(
    detector: Detector,
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    output_dir: str | Path,
    *,
    per_class: int = 2,
    method: CamMethod = "gradcam",
    target: CamTarget = "predicted",
    upscale: int = 4,
) -> list[OverlayRecord]:
    """Save "image | heat map" PNGs for the most- and least-confident images of each true class."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    chosen = select_confidence_extremes(labels, np.asarray(probabilities), per_class)
    if not chosen:
        return []
    indices = np.array([index for index, _, _ in chosen])
    encoded = encoded_inputs(detector, images[indices])
    cams = cams_of_encoded(detector, encoded, method=method, target=target)
    records = []
    for row, (index, label, rank) in enumerate(chosen):
        picture = encoded[row].astype(np.float32) / 255.0
        overlay = show_cam_on_image(picture, cams.maps[row], use_rgb=True)
        side_by_side = np.concatenate([encoded[row], overlay], axis=1)
        enlarged = Image.fromarray(side_by_side).resize(
            (side_by_side.shape[1] * upscale, side_by_side.shape[0] * upscale), Image.Resampling.NEAREST
        )
        class_name = "synthetic" if label == 1 else "real"
        path = output_dir / f"{class_name}_{rank}_{index:05d}_{method}.png"
        enlarged.save(path, format="PNG")
        records.append(OverlayRecord(str(path), index, int(label), float(probabilities[index]), rank))
    return records


def save_window_overlays(
    detector: Detector,
    windows: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    output_dir: str | Path,
    *,
    per_class: int = 2,
    method: CamMethod = "gradcam",
    target: CamTarget = "synthetic",
    upscale: int = 2,
) -> list[OverlayRecord]:
    """`save_overlays` for a native-crop detector: the map of every tile of the window, laid out over the whole
    window (crops.stitch), so a reader sees where in the lesion the traces are. `windows` is an object array (only
    the chosen rows are read)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    size = detector.preprocessing.size
    records = []
    for index, label, rank in select_confidence_extremes(np.asarray(labels), np.asarray(probabilities), per_class):
        window = windows[index]
        crops = tiles(window, size)
        cams = cams_of_encoded(detector, encoded_inputs(detector, crops), method=method, target=target)
        heat = stitch(cams.maps, window.shape[0], size)
        overlay = show_cam_on_image(window.astype(np.float32) / 255.0, heat, use_rgb=True)
        side_by_side = np.concatenate([window, overlay], axis=1)
        enlarged = Image.fromarray(side_by_side).resize(
            (side_by_side.shape[1] * upscale, side_by_side.shape[0] * upscale), Image.Resampling.NEAREST)
        class_name = "synthetic" if label == 1 else "real"
        path = output_dir / f"{class_name}_{rank}_{index:05d}_{method}.png"
        enlarged.save(path, format="PNG")
        records.append(OverlayRecord(str(path), index, int(label), float(probabilities[index]), rank))
    return records
