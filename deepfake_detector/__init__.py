"""Synthetic-image detector: a timm ViT trained from scratch, calibrated, evaluated and explained.

A library: numpy arrays / paths in, numbers and dataclasses out. It never imports Django.
"""
from deepfake_detector.augment import WangAugmentation
from deepfake_detector.calibration import (
    apply_temperature,
    binary_nll,
    expected_calibration_error,
    fit_temperature,
)
from deepfake_detector.checkpoint import CheckpointIntegrityError, load_detector, save_detector
from deepfake_detector.data import (
    REAL_LABEL,
    SYNTHETIC_LABEL,
    DataSplit,
    LabelledImages,
    Preprocessing,
    hash_images,
    split_by_group,
    standardise_image,
    standardise_images,
)
from deepfake_detector.evaluate import DetectorEvaluation, MetricWithCI, evaluate_detector
from deepfake_detector.explain import CamResult, OverlayRecord, compute_cams, save_overlays
from deepfake_detector.faithfulness import RoadResult, road_faithfulness
from deepfake_detector.model import Detector, DetectorConfig
from deepfake_detector.scoring import compute_logits, score_images
from deepfake_detector.train import (
    TrainConfig,
    TrainingCancelled,
    TrainingProgress,
    TrainingResult,
    train_detector,
)

__all__ = [
    "REAL_LABEL",
    "SYNTHETIC_LABEL",
    "CamResult",
    "CheckpointIntegrityError",
    "DataSplit",
    "Detector",
    "DetectorConfig",
    "DetectorEvaluation",
    "LabelledImages",
    "MetricWithCI",
    "OverlayRecord",
    "Preprocessing",
    "RoadResult",
    "TrainConfig",
    "TrainingCancelled",
    "TrainingProgress",
    "TrainingResult",
    "WangAugmentation",
    "apply_temperature",
    "binary_nll",
    "compute_cams",
    "compute_logits",
    "evaluate_detector",
    "expected_calibration_error",
    "fit_temperature",
    "hash_images",
    "load_detector",
    "road_faithfulness",
    "save_detector",
    "save_overlays",
    "score_images",
    "split_by_group",
    "standardise_image",
    "standardise_images",
    "train_detector",
]
