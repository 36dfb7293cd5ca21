"""A feature is a function of the image alone: bit-identical whatever the batch size, the other images in the call,
their order, the torch thread count and the process that computes it. Audits on 1, 2 or 4 workers, with 1 or 2
chunk threads, re-runs and a regulator's re-run on another deployment with the same numerics id all start from these
bytes. (Before: ATen sent 1x1 convolutions to oneDNN or to its own GEMM depending on batch size and thread count,
and features differed by up to 7e-6 between batch 8 on 1 thread and batch 16 on 2.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.extractors import ExtractorUnavailable, bf16_unavailable_reason, route_convolutions_through_onednn
from metrics.feature_inputs import common_provenance
from metrics.features import extract_features, extract_features_from_arrays, get_extractor, resolve_precision
from metrics.image_io import load_squares
from metrics.torch_threads import intra_op_threads

REPO = Path(__file__).resolve().parents[2]
PRECISIONS = [
    "fp32",
    pytest.param("bf16", marks=pytest.mark.skipif(bf16_unavailable_reason() is not None, reason="no native BF16")),
]


@pytest.fixture(scope="module")
def squares(isic_paths) -> np.ndarray:
    """16 real isic-uda1 images at the network's input size, disjoint from the other tests' subsets."""
    return load_squares(isic_paths[300:316], 224)


@pytest.fixture(scope="module")
def expected(squares) -> dict[str, np.ndarray]:
    """The features every other way of computing them must reproduce: batches of 16 on 2 threads."""
    out = {}
    for precision in ("fp32", "bf16"):
        if precision == "fp32" or bf16_unavailable_reason() is None:
            with intra_op_threads(2):
                out[precision] = extract_features_from_arrays(squares, batch_size=16, precision=precision).features
    return out


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_bit_identical_across_batch_sizes_and_thread_counts(squares, expected, threads, precision) -> None:
    for batch_size in (1, 5, 16):
        with intra_op_threads(threads):
            got = extract_features_from_arrays(squares, batch_size=batch_size, precision=precision).features
        np.testing.assert_array_equal(got, expected[precision], err_msg=f"{threads} threads, batch {batch_size}")


def test_bit_identical_whatever_the_other_images_in_the_batch(squares, expected) -> None:
    order = np.random.default_rng(0).permutation(len(squares))
    shuffled = extract_features_from_arrays(squares[order], batch_size=7).features
    np.testing.assert_array_equal(shuffled[np.argsort(order)], expected["fp32"])
    strangers = np.random.default_rng(1).integers(0, 256, size=(5, 224, 224, 3), dtype=np.uint8)
    mixed = extract_features_from_arrays(np.concatenate([strangers[:3], squares[:4], strangers[3:]]), batch_size=9)
    np.testing.assert_array_equal(mixed.features[3:7], expected["fp32"][:4])


def test_files_through_the_decoder_give_the_same_bits_as_arrays(isic_paths, squares, expected) -> None:
    with intra_op_threads(1):
        from_files = extract_features(isic_paths[300:316], batch_size=3)
    np.testing.assert_array_equal(from_files.features, expected["fp32"])


@pytest.mark.slow
def test_a_fresh_process_with_other_thread_settings_gets_the_same_bytes(squares, expected, tmp_path) -> None:
    """What another deployment (one chunk thread, a new process) computes for the same images."""
    np.save(tmp_path / "squares.npy", squares)
    script = (
        "import sys, numpy as np, torch; from metrics.features import extract_features_from_arrays; "
        "assert torch.get_num_threads() == 1; "
        "squares = np.load(sys.argv[1]); "
        "np.save(sys.argv[2], extract_features_from_arrays(squares, batch_size=4).features)"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "squares.npy"), str(tmp_path / "out.npy")],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    assert np.load(tmp_path / "out.npy").tobytes() == expected["fp32"].tobytes()


def test_any_network_routed_through_onednn_is_batch_and_thread_independent(effnet, squares) -> None:
    """The generic routing (used for Inception-V3) on the plain, unfused timm EfficientNet."""
    module = route_convolutions_through_onednn(effnet.reference_module())
    images = torch.from_numpy(squares).permute(0, 3, 1, 2)
    with torch.inference_mode():
        with intra_op_threads(1):
            one_by_one = torch.cat([module(images[i : i + 1]) for i in range(len(images))])
        with intra_op_threads(2):
            together = module(images)
    assert torch.equal(one_by_one, together)


def test_precision_and_numerics_are_recorded_and_bf16_is_refused_where_it_would_be_emulated(squares) -> None:
    fp32 = extract_features_from_arrays(squares[:2])
    provenance = fp32.provenance()
    assert provenance["precision"] == "fp32"
    assert provenance["numerics"] == get_extractor().numerics_id
    assert "oneDNN" in provenance["numerics"] and torch.__version__ in provenance["numerics"]
    if bf16_unavailable_reason() is None:
        bf16 = extract_features_from_arrays(squares[:2], precision="bf16")
        with pytest.raises(ValueError, match="extracted differently"):
            common_provenance(fp32, bf16)
    else:
        with pytest.raises(ExtractorUnavailable, match="no native BF16"):
            extract_features_from_arrays(squares[:2], precision="bf16")


@pytest.mark.parametrize("native, extractor_id, requested, resolved", [
    (True, "effnet-lite0-imagenet", "auto", "bf16"),
    (False, "effnet-lite0-imagenet", "auto", "fp32"),
    (True, "inception-v3-fid", "auto", "fp32"),  # runs in fp32 only
    (True, "effnet-lite0-imagenet", "fp32", "fp32"),
    (False, "effnet-lite0-imagenet", "bf16", "bf16"),  # as asked: get_extractor refuses it with the reason
])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it_natively(monkeypatch, native, extractor_id, requested,
                                                                   resolved) -> None:
    import metrics.extractors

    monkeypatch.setattr(metrics.extractors, "has_native_bf16", lambda: native)
    assert resolve_precision(requested, extractor_id) == resolved
    with pytest.raises(ValueError, match="must be one of"):
        resolve_precision("fp16", extractor_id)
