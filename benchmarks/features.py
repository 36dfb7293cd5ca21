"""Feature-extraction throughput of the default extractor, side by side with the naive way, in one run.

    .venv/bin/python -m benchmarks.features [--n 128] [--batch 64]

Naive: torchmetrics FrechetInceptionDistance(feature=<the same EfficientNet-Lite0 module>), fed batch by batch in
fp32 (plain timm forward, NCHW, batch norm unfolded), images decoded and resized one by one in the same thread.
Ours: metrics.features.extract_features (batch norm folded into the convolutions, channels-last, inference mode,
decoding on a background thread). Both see identical 224-px uint8 inputs (same PIL preprocessing), so their FDs
must agree; the table prints the difference.

Two inputs: isic-uda1 JPEGs from disk (512x384 -> 224) and 64-px in-memory arrays upsampled to 224 (the size a
baseline GAN produces). Also: the CPU's flags and oneDNN kernel family, model FLOPs per image
(torch.utils.flop_counter), the fraction of this CPU's measured fp32 matmul peak that each path reaches, our bf16 path
beside our fp32 one (only on CPUs with native BF16; its FD difference from fp32 must stay under 0.5 %), model-only
variants (what each optimisation buys, and two fp32 alternatives measured and not adopted: two single-thread streams,
and ONNX Runtime when it is installed), and peak RSS (VmHWM) of the fast path in fresh processes at --rss-n
(default 64 and 2,000; target <= 1.5 GB: memory must not grow with N beyond the N x 1280 feature array).
"""
from __future__ import annotations

import argparse
import copy
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def isic_paths() -> list[Path]:
    folder = SHARED / "isic-uda1"
    with open(folder / "labels.csv", newline="") as handle:
        return [folder / row["file"] for row in csv.DictReader(handle)]


def load_avg() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def matmul_peak_gflops(dtype: torch.dtype, repeats: int = 5) -> float:
    a, b = torch.randn(2048, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def model_gflops_per_image(model: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
    return counter.get_total_flops() / 1e9


def naive_pass(module, sources, batch_size: int) -> tuple[float, float, object]:
    """torchmetrics FID fed batch by batch; first half real, second half fake. Returns (seconds, FD, metric)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from metrics.image_io import load_square

    metric = FrechetInceptionDistance(feature=module)
    half = len(sources) // 2
    start = time.perf_counter()
    for begin in range(0, len(sources), batch_size):
        chunk = sources[begin : begin + batch_size]
        batch = torch.from_numpy(np.stack([load_square(s, 224) for s in chunk])).permute(0, 3, 1, 2).contiguous()
        real_part = max(0, min(len(chunk), half - begin))
        if real_part:
            metric.update(batch[:real_part], real=True)
        if real_part < len(chunk):
            metric.update(batch[real_part:], real=False)
    value = float(metric.compute())
    return time.perf_counter() - start, value, metric


def fast_pass(sources, batch_size: int, from_arrays: bool, precision: str = "fp32") -> tuple[float, float]:
    from metrics.features import extract_features, extract_features_from_arrays
    from metrics.frechet import compute_frechet_distance

    start = time.perf_counter()
    if from_arrays:
        features = extract_features_from_arrays(sources, batch_size=batch_size, precision=precision)
    else:
        features = extract_features(sources, batch_size=batch_size, precision=precision)
    seconds = time.perf_counter() - start
    half = len(sources) // 2
    fd = compute_frechet_distance(
        features.select(range(half)), features.select(range(half, len(sources))), seed=0, n_jackknife_groups=0,
        allow_rank_deficient=True,
    ).value
    return seconds, fd


def model_variants(extractor, batch: np.ndarray, repeats: int = 2) -> list[tuple[str, float]]:
    """img/s of the network alone on one preprocessed batch, one optimisation added at a time."""
    from metrics.extractors import EffNetReferenceModule

    plain = EffNetReferenceModule(copy.deepcopy(extractor.model))
    nchw = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
    channels_last = EffNetReferenceModule(copy.deepcopy(extractor.model).to(memory_format=torch.channels_last))

    def rate(call) -> float:
        call()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        return len(batch) / best

    ours = extractor.embed_batch(batch)
    rows = [("fp32 NCHW, autograd on", rate(lambda: plain(nchw)))]
    with torch.inference_mode():
        rows.append(("fp32 NCHW, inference_mode", rate(lambda: plain(nchw))))
        rows.append(("+ channels_last", rate(lambda: channels_last(nchw.contiguous(memory_format=torch.channels_last)))))
        rows.append(("+ batch norm folded (ours)", rate(lambda: extractor.embed_batch(batch))))
        rows.append(two_streams(extractor, batch, ours, rate))
        small = nchw[:8].contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            start = time.perf_counter()
            channels_last(small)
            rows.append(("bf16 autocast (8 images, 1 run)", 8 / (time.perf_counter() - start)))
    rows.append(onnx_runtime(extractor, batch, ours, rate))
    return rows


def two_streams(extractor, batch: np.ndarray, ours: np.ndarray, rate) -> tuple[str, float]:
    """Tried for the fp32 path: each half of the batch on its own Python thread at one torch thread (no per-layer
    barrier between cores), instead of one stream at this process's threads. Same bits; not adopted unless faster."""
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    halves = np.array_split(batch, threads)

    def one(part: np.ndarray) -> np.ndarray:
        torch.set_num_threads(1)
        with torch.inference_mode():
            return extractor.fast_model(torch.from_numpy(part).permute(0, 3, 1, 2)).numpy()

    def streams() -> np.ndarray:
        with ThreadPoolExecutor(threads) as pool:
            try:
                return np.concatenate(list(pool.map(one, halves)))
            finally:
                torch.set_num_threads(threads)

    same = np.array_equal(streams(), ours)
    return (f"{threads} streams x 1 thread ({'same bits' if same else 'OTHER BITS'})", rate(streams))


def onnx_runtime(extractor, batch: np.ndarray, ours: np.ndarray, rate) -> tuple[str, float]:
    """Tried for the fp32 path: the same network exported to ONNX and run by ONNX Runtime's CPU provider (MLAS kernels,
    its own Conv+BN+Clip fusions), in micro-batches of 2 (its fastest here). Not a dependency: measured only when
    onnxruntime is installed."""
    import tempfile

    try:
        import onnxruntime
    except ImportError:
        return ("ONNX Runtime (not installed: pip install onnxruntime)", float("nan"))
    from metrics.extractors import EffNetReferenceModule

    module = EffNetReferenceModule(copy.deepcopy(extractor.model))

    class FloatInput(torch.nn.Module):  # ONNX Runtime has no uint8 convolution path: normalise outside, as ours does
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return module.model.forward_head(module.model.forward_features(x), pre_logits=True)

    inputs = (batch.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2).copy()
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/effnet.onnx"
        torch.onnx.export(FloatInput().eval(), (torch.from_numpy(inputs[:2]),), path, input_names=["x"],
                          output_names=["f"], dynamic_axes={"x": {0: "b"}, "f": {0: "b"}}, dynamo=False, opset_version=17)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run() -> np.ndarray:
        return np.concatenate([session.run(None, {"x": inputs[i : i + 2]})[0] for i in range(0, len(inputs), 2)])

    difference = float(np.abs(run() - ours).max())
    return (f"ONNX Runtime {onnxruntime.__version__} fp32 (max |diff| {difference:.0e})", rate(run))


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that across fork and exec, so a
    child started by this benchmark would report the parent's peak (2.3 GB here, with the naive pass's tensors)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def child_peak_rss(n: int, precision: str) -> None:
    """Runs in a fresh process: extract n images, print peak RSS in MiB."""
    from metrics.features import extract_features, get_extractor

    get_extractor(precision=precision)
    loaded = peak_rss_mib()
    paths = (isic_paths() * (n // 557 + 1))[:n]
    extract_features(paths, keys=[f"{i:064x}" for i in range(n)], batch_size=64, precision=precision)
    print(loaded, peak_rss_mib())


def cpu_summary() -> str:
    from benchmarks.copy_detection import cpu_name
    from metrics.extractors import cpu_flags, has_native_bf16, onednn_isa

    shown = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma")))
    return (f"{cpu_name()}; {os.cpu_count()} CPUs; flags: {' '.join(shown) or 'none reported'}; oneDNN kernels: "
            f"{onednn_isa()}; native BF16: {'yes' if has_native_bf16() else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=128, help="images per input kind (half real, half fake)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rss-n", type=int, nargs="+", default=[64, 2000], help="N for the fresh-process RSS runs")
    parser.add_argument("--child-rss", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        child_peak_rss(args.child_rss, args.child_precision)
        return

    from metrics.features import bf16_unavailable_reason, get_extractor
    from metrics.image_io import load_square

    print(f"# benchmarks/features.py  N={args.n} batch={args.batch} torch threads={torch.get_num_threads()}")
    print(f"# {load_avg()} (start)  cpu capability: {torch.backends.cpu.get_cpu_capability()}")
    print(f"# {cpu_summary()}")
    bf16_refused = bf16_unavailable_reason()
    precisions = ["fp32"] + ([] if bf16_refused else ["bf16"])
    if bf16_refused:
        print(f"# bf16 path not run: {bf16_refused}")
    extractor = get_extractor()
    paths = isic_paths()[: args.n]
    small = [np.asarray(load_square(p, 64)) for p in isic_paths()[: args.n]]  # 64-px "GAN-sized" arrays
    gflops = model_gflops_per_image(extractor.reference_module())
    peak32, peak16 = matmul_peak_gflops(torch.float32), matmul_peak_gflops(torch.bfloat16, repeats=1)
    print(f"# model: {gflops:.3f} GFLOP/image (FlopCounterMode, 224 px); 2048^2 matmul peak on this run: "
          f"fp32 {peak32:.1f} GFLOP/s, bf16 {peak16:.2f} GFLOP/s")

    rows = []
    for label, sources, arrays in (("isic JPEG 512x384", paths, False), ("64-px arrays", small, True)):
        naive_s, naive_fd, _ = naive_pass(extractor.reference_module(), sources, args.batch)
        rows.append((label, "naive torchmetrics fp32", len(sources) / naive_s, naive_fd, naive_fd))
        for precision in precisions:  # fp32 first: bf16's FD is compared with our fp32 row, fp32's with the naive one
            fast_s, fast_fd = fast_pass(sources, args.batch, arrays, precision)
            compared_fd = naive_fd if precision == "fp32" else rows[-1][3]
            rows.append((label, f"ours {precision}", len(sources) / fast_s, fast_fd, compared_fd))
    width = len(precisions) + 1
    print(f"\n{'input':20s} {'path':26s} {'img/s':>8s} {'% fp32 peak':>11s} {'FD':>10s} {'vs naive':>8s} "
          f"{'FD diff':>9s}  (FD diff: fp32 paths vs naive, bf16 vs ours fp32)")
    for i, (label, path, rate, fd, compared_fd) in enumerate(rows):
        base_rate = rows[i - i % width][2]
        print(f"{label:20s} {path:26s} {rate:8.1f} {100 * rate * gflops / peak32:10.1f}% {fd:10.3f} "
              f"{rate / base_rate:7.2f}x {100 * (fd - compared_fd) / compared_fd:8.1e}%")

    batch = np.stack([load_square(p, 224) for p in paths[: args.batch]])
    print("\nnetwork alone, one preprocessed batch:")
    for name, rate in model_variants(extractor, batch):
        print(f"  {name:48s} {rate:8.1f} img/s  {100 * rate * gflops / peak32:5.1f}% of fp32 peak")

    print("\npeak RSS of the fast path in a fresh process (keys given, no cache, batch 64):")
    for precision in precisions:
        for n in args.rss_n:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.features", "--child-rss", str(n), "--child-precision", precision],
                cwd=REPO, capture_output=True, text=True, check=True,
            )
            loaded, peak = (float(v) for v in out.stdout.strip().splitlines()[-1].split())
            print(f"  {precision} N={n:5d}: {peak:7.1f} MiB peak ({loaded:.1f} MiB after importing torch and loading "
                  f"the model)  target <= 1536 MiB: {'PASS' if peak <= 1536 else 'FAIL'}")
    print(f"\n# {load_avg()} (end)")


if __name__ == "__main__":
    main()
