"""Run a baseline training within a step and/or time budget, reporting progress and honouring cancellation."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from auditor.generation.baselines.checkpoint import Checkpoint, StopReason, software_versions
from auditor.generation.baselines.config import TrainConfig, TrainProgress, resolve_device
from auditor.generation.baselines.data import TrainingImages
from auditor.generation.baselines.gan import GanTrainer
from auditor.generation.baselines.vae import VaeTrainer
from metrics.torch_threads import intra_op_threads

# A cancellation callback may hit a database, so it is asked at most this often (and at every progress report).
STOP_POLL_SECONDS = 1.0


def _describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _check_compatible(config: TrainConfig, images: TrainingImages) -> None:
    if images.image_size != config.image_size:
        raise ValueError(f"training images are {images.image_size} px but the config asks for {config.image_size} px")
    if config.kind == "cdcgan" and images.labels is None:
        raise ValueError("a class-conditional DCGAN needs labelled training images")
    if config.kind == "cdcgan" and images.num_classes < 2:
        raise ValueError("a class-conditional DCGAN needs at least two classes")
    if len(images) < 2:
        raise ValueError("need at least two training images")


def train(
    config: TrainConfig,
    images: TrainingImages,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Checkpoint:
    """Train a baseline generator until `max_steps` or `max_seconds` runs out, or `should_stop()` returns True.

    On the CPU, the same config and images give bit-identical weights (for a step budget). The caller's global
    random state is left untouched. A cancelled run still returns its checkpoint, with stop_reason "cancelled".
    """
    _check_compatible(config, images)
    device = resolve_device(config.device)
    with intra_op_threads(config.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # network initialisation (always on the CPU, then moved)
        trainer: GanTrainer | VaeTrainer = (
            GanTrainer(config, images, device) if config.is_gan else VaeTrainer(config, images, device)
        )
        step, elapsed, stop_reason, history = _run_loop(config, trainer, progress, should_stop)
        device_description = _describe_device(device)
    return Checkpoint(
        config=config,
        model_state=trainer.sampling_state(),
        class_names=images.class_names if config.kind == "cdcgan" else None,
        training_class_counts=(
            tuple(int(c) for c in torch.bincount(images.labels, minlength=images.num_classes))
            if config.kind == "cdcgan" and images.labels is not None
            else None
        ),
        manifest_sha256=images.manifest_sha256,
        preprocessing=images.preprocessing,
        training_image_count=len(images),
        steps=step,
        elapsed_seconds=elapsed,
        stop_reason=stop_reason,
        loss_history=history,
        software=software_versions(),
        device=device_description,
    )


def _run_loop(
    config: TrainConfig,
    trainer: GanTrainer | VaeTrainer,
    progress: Callable[[TrainProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[int, float, StopReason, list[dict[str, float]]]:
    history: list[dict[str, float]] = []
    window: dict[str, torch.Tensor] = {}
    window_steps = 0
    step = 0
    start = time.perf_counter()
    last_stop_poll = start

    def report(elapsed: float) -> None:
        nonlocal window, window_steps
        # .item() synchronises with the GPU, so it happens once per report rather than once per step.
        losses = {name: float(total.item()) / window_steps for name, total in window.items()}
        history.append({"step": float(step), "elapsed_seconds": elapsed, **losses})
        window, window_steps = {}, 0
        if progress is not None:
            rate = step / elapsed if elapsed > 0 else 0.0
            progress(TrainProgress(step, elapsed, rate, losses, config.max_steps, config.max_seconds))

    while True:
        now = time.perf_counter()
        elapsed = now - start
        if config.max_steps is not None and step >= config.max_steps:
            stop_reason: StopReason = "max_steps"
            break
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stop_reason = "max_seconds"
            break
        if should_stop is not None and (now - last_stop_poll >= STOP_POLL_SECONDS or step % config.progress_every == 0):
            last_stop_poll = now
            if should_stop():
                stop_reason = "cancelled"
                break
        losses = trainer.step()
        step += 1
        for name, value in losses.items():
            window[name] = window[name] + value if name in window else value.clone()
        window_steps += 1
        if step % config.progress_every == 0:
            report(time.perf_counter() - start)

    elapsed = time.perf_counter() - start
    if window_steps:
        report(elapsed)
    return step, elapsed, stop_reason, history
