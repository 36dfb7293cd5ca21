"""Training: AdamW, Wang-style augmentation, early stopping and temperature scaling on the validation split.

Deterministic given the seed on CPU: every random draw comes from a numpy Generator or from torch's RNG seeded
inside ``torch.random.fork_rng`` (so the caller's global RNG state is untouched). On CUDA, results are only as
deterministic as the kernels are.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Literal, Mapping

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepfake_detector.augment import WangAugmentation, augment_batch
from deepfake_detector.calibration import apply_temperature, binary_nll, expected_calibration_error, fit_temperature
from deepfake_detector.checkpoint import software_versions
from deepfake_detector.data import DataSplit, LabelledImages, Preprocessing, encode_for_model
from deepfake_detector.model import Detector, DetectorConfig, build_vit, images_to_tensor, resolve_device
from deepfake_detector.crops import random_crop
from deepfake_detector.scoring import encoded_tiles, logits_of_encoded, logits_of_tiles
from metrics.torch_threads import intra_op_threads


@dataclass(frozen=True)
class TrainConfig:
    model: DetectorConfig = DetectorConfig()
    augmentation: WangAugmentation = WangAugmentation()
    preprocessing: Preprocessing = Preprocessing()
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    max_epochs: int = 40
    patience: int = 10
    time_budget_s: float = 15 * 60
    seed: int = 0
    device: str = "auto"
    # CPU intra-op threads during training (restored afterwards); None keeps torch's setting. On an oversubscribed
    # machine 1 thread was ~6x faster than 2 here (OpenMP threads wait on each other when cores are busy).
    num_threads: int | None = None
    # False: keep the last epoch's weights and score the validation split once, at the end (for the temperature).
    # A fixed-epoch cross-fit on a cosine schedule gains little from picking an epoch, and scoring the validation
    # tiles after every epoch cost as much as the training itself with native crops.
    select_best_epoch: bool = True


@dataclass(frozen=True)
class TrainingProgress:
    epoch: int
    max_epochs: int
    steps: int
    train_loss: float
    validation_loss: float
    validation_auc: float | None
    elapsed_s: float
    fraction_done: float


@dataclass
class TrainingResult:
    detector: Detector
    history: list[TrainingProgress]
    best_epoch: int
    stopped_reason: Literal["early_stopping", "max_epochs", "time_budget"]
    wall_s: float
    validation: dict[str, float] = field(default_factory=dict)


class TrainingCancelled(RuntimeError):
    """Raised when ``should_stop`` returns True; nothing is returned or saved."""


def _learning_rate_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _safe_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else None


def train_detector(
    dataset: LabelledImages,
    split: DataSplit,
    config: TrainConfig = TrainConfig(),
    *,
    manifests: Mapping[str, str] | None = None,
    progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train on ``split.train``, early-stop and calibrate on ``split.validation``; ``split.test`` is never read.

    ``dataset.images`` must already be standardised (``data.standardise_images``). ``manifests`` names the
    training data (e.g. ``{"real": <manifest sha256>, "synthetic": <manifest sha256>}``) for the checkpoint.
    """
    size = config.preprocessing.size
    if config.preprocessing.native:
        if dataset.images.dtype != object or any(w.dtype != np.uint8 or w.shape[0] < size for w in dataset.images):
            raise ValueError(f"dataset.images must be native windows (an object array of uint8 squares >= {size} px)")
    elif dataset.images.dtype != np.uint8 or dataset.images.shape[1:] != (size, size, 3):
        raise ValueError(f"dataset.images must be standardised uint8 N x {size} x {size} x 3")
    train_labels = dataset.labels[split.train]
    validation_labels = dataset.labels[split.validation]
    if len(np.unique(train_labels)) < 2 or len(validation_labels) == 0:
        raise ValueError("the training split needs both classes and the validation split must not be empty")
    parts = [set(split.train.tolist()), set(split.validation.tolist()), set(split.test.tolist())]
    if parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]:
        raise ValueError("train, validation and test splits overlap")

    with intra_op_threads(config.num_threads):
        return _train(dataset, split, config, manifests, progress, should_stop)


def _prepared_batches(images: np.ndarray, order: np.ndarray, config: TrainConfig,
                      rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, augmented and encoded images) of each batch of one epoch, the next batch prepared on a background
    thread while the model trains on this one. Augmentation and the JPEG round trips are PIL and numpy work that
    releases the GIL, so they use a core the training leaves idle (it runs at a fixed thread count, often 1). `rng` is
    drawn from on that one thread only, batch after batch: the batches are the ones a plain loop would make."""
    batches = [order[start : start + config.batch_size] for start in range(0, len(order), config.batch_size)]

    def prepare(indices: np.ndarray) -> np.ndarray:
        if config.preprocessing.native:  # one random native crop per image, then the same augmentation
            batch = np.stack([random_crop(images[i], config.preprocessing.size, rng) for i in indices])
        else:
            batch = images[indices]
        return encode_for_model(augment_batch(batch, config.augmentation, rng), config.preprocessing)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-batches") as background:
        pending = background.submit(prepare, batches[0]) if batches else None
        for k, indices in enumerate(batches):
            encoded = pending.result()
            if k + 1 < len(batches):
                pending = background.submit(prepare, batches[k + 1])
            yield indices, encoded


def _validation_logits(detector: Detector, encoded: np.ndarray, tile_counts: np.ndarray | None) -> np.ndarray:
    """Validation logits as the detector will score: tile means for native windows, one pass otherwise. The
    inputs are encoded once per training run, not once per epoch."""
    return logits_of_encoded(detector, encoded) if tile_counts is None else logits_of_tiles(detector, encoded, tile_counts)


def _train(
    dataset: LabelledImages,
    split: DataSplit,
    config: TrainConfig,
    manifests: Mapping[str, str] | None,
    progress: Callable[[TrainingProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> TrainingResult:
    train_labels = dataset.labels[split.train]
    validation_labels = dataset.labels[split.validation]
    device = resolve_device(config.device)
    started = time.perf_counter()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        model = build_vit(config.model).to(device)
        validation_images = dataset.images[split.validation]
        if config.preprocessing.native:
            validation_encoded, validation_tiles = encoded_tiles(validation_images, config.preprocessing)
        else:
            validation_encoded, validation_tiles = encode_for_model(validation_images, config.preprocessing), None
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(split.train) / config.batch_size)
        warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
        total_steps = config.max_epochs * steps_per_epoch
        # Balance the classes in the loss rather than by resampling, so every image is seen once per epoch.
        n_synthetic = float((train_labels == 1).sum())
        pos_weight = torch.tensor([(len(train_labels) - n_synthetic) / n_synthetic], device=device)
        loss_function = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

        history: list[TrainingProgress] = []
        best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
        stopped_reason: Literal["early_stopping", "max_epochs", "time_budget"] = "max_epochs"
        step, validation_seconds = 0, 0.0
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            order = rng.permutation(split.train)
            epoch_losses = []
            out_of_time = False
            for indices, encoded in _prepared_batches(dataset.images, order, config, rng):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled(f"training cancelled at epoch {epoch}, step {step}")
                # Leave room for the last validation pass and the temperature fit inside the budget.
                if time.perf_counter() - started > config.time_budget_s - 2 * validation_seconds:
                    out_of_time = True
                    break
                inputs = images_to_tensor(encoded, device)
                targets = torch.from_numpy(dataset.labels[indices].astype(np.float32)).to(device)
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * _learning_rate_factor(step, warmup_steps, total_steps)
                loss = loss_function(model(inputs)[:, 0], targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_losses.append(float(loss.detach()))
                step += 1
            if not epoch_losses:  # the budget ran out before this epoch took a step
                stopped_reason = "time_budget"
                break

            if not config.select_best_epoch and epoch < config.max_epochs and not out_of_time:
                continue  # validation only after the last epoch
            validation_started = time.perf_counter()
            model.eval()
            detector = Detector(model, config.model, config.preprocessing)
            validation_logits = _validation_logits(detector, validation_encoded, validation_tiles)
            validation_loss = binary_nll(validation_logits, validation_labels)
            elapsed = time.perf_counter() - started
            validation_seconds = elapsed - (validation_started - started)
            record = TrainingProgress(
                epoch=epoch,
                max_epochs=config.max_epochs,
                steps=step,
                train_loss=float(np.mean(epoch_losses)),
                validation_loss=validation_loss,
                validation_auc=_safe_auc(validation_labels, validation_logits),
                elapsed_s=elapsed,
                fraction_done=min(1.0, max(epoch / config.max_epochs, elapsed / max(config.time_budget_s, 1e-9))),
            )
            history.append(record)
            if progress is not None:
                progress(record)
            if validation_loss < best_loss - 1e-6:
                best_loss, best_epoch, best_state = validation_loss, epoch, copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= config.patience:
                stopped_reason = "early_stopping"
                break
            if out_of_time:
                stopped_reason = "time_budget"
                break

    model.load_state_dict(best_state)
    model.eval()
    detector = Detector(model, config.model, config.preprocessing)
    validation_logits = _validation_logits(detector, validation_encoded, validation_tiles)
    detector.temperature = fit_temperature(validation_logits, validation_labels)
    validation = {
        "n": int(len(validation_labels)),
        "temperature": detector.temperature,
        "nll_before_scaling": binary_nll(validation_logits, validation_labels),
        "nll_after_scaling": binary_nll(validation_logits, validation_labels, detector.temperature),
        "ece_before_scaling": expected_calibration_error(apply_temperature(validation_logits), validation_labels),
        "ece_after_scaling": expected_calibration_error(
            apply_temperature(validation_logits, detector.temperature), validation_labels
        ),
        "auc": _safe_auc(validation_labels, validation_logits),
    }
    wall_s = time.perf_counter() - started
    detector.metadata = {
        "seed": config.seed,
        "train_config": asdict(config),
        "preprocessing": config.preprocessing.name,
        "manifests": dict(manifests or {}),
        "split": split.as_lists(),
        "history": [asdict(record) for record in history],
        "best_epoch": best_epoch,
        "stopped_reason": stopped_reason,
        "steps": step,
        "wall_s": wall_s,
        "device": str(device),
        "metrics": {"validation": validation},
        "software": software_versions(),
    }
    return TrainingResult(detector, history, best_epoch, stopped_reason, wall_s, validation)
