"""The default extractor is really ImageNet-pretrained, its fast path equals the plain timm forward, and the
registry names what is missing instead of downloading."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from metrics.extractors import EXTRACTOR_INFOS, ExtractorUnavailable, effnet_weights_path, load_effnet_lite0
from metrics.features import available_extractors, extract_features, extract_features_from_arrays, get_extractor
from metrics.image_io import load_square, sha256_file

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


def test_effnet_is_imagenet_pretrained(effnet) -> None:
    batch = np.stack([load_square(data.chelsea(), 224), load_square(data.coffee(), 224)])
    top1 = effnet.logits_from_features(effnet.embed_batch(batch)).argmax(axis=1)
    assert int(top1[0]) in CAT_CLASSES
    assert int(top1[1]) in COFFEE_CLASSES


def test_every_weight_of_the_wheel_is_loaded_key_for_key() -> None:
    source = torch.load(effnet_weights_path(), map_location="cpu", weights_only=True)
    model = load_effnet_lite0()
    loaded = model.state_dict()
    assert len(source) == len(loaded) == 296
    # Same multiset of tensors: nothing left at its random initialisation.
    source_sums = sorted(round(float(t.double().sum()), 4) for t in source.values())
    loaded_sums = sorted(round(float(t.double().sum()), 4) for t in loaded.values())
    assert source_sums == loaded_sums


def test_fast_path_equals_plain_timm_forward(effnet, isic_paths) -> None:
    batch = np.stack([load_square(path, 224) for path in isic_paths[:8]])
    fast = effnet.embed_batch(batch)
    with torch.inference_mode():
        plain = effnet.reference_module()(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
    assert fast.shape == (8, 1280) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-4 * np.abs(plain).max())


def test_files_and_arrays_get_identical_features_whatever_the_format(effnet, isic_paths, tmp_path) -> None:
    """The same pixels as a PNG file, as a lossless re-encoding, and as an in-memory array: same features."""
    pixels = np.asarray(Image.open(isic_paths[0]).convert("RGB"))
    Image.fromarray(pixels).save(tmp_path / "same.png")
    Image.fromarray(pixels).save(tmp_path / "same.bmp")
    from_png = extract_features([tmp_path / "same.png", tmp_path / "same.bmp"])
    from_array = extract_features_from_arrays(pixels[None])
    # Same input pixels, batch of 2 vs 1: the same bits (features do not depend on the batch, test_feature_determinism).
    np.testing.assert_array_equal(from_png.features[0], from_array.features[0])
    np.testing.assert_array_equal(from_png.features[0], from_png.features[1])
    assert from_png.keys[0] == sha256_file(tmp_path / "same.png") != from_png.keys[1]


def test_feature_set_records_extractor_preprocessing_and_weights(isic_reference) -> None:
    assert isic_reference.features.shape == (180, 1280)
    assert isic_reference.extractor_id == "effnet-lite0-imagenet"
    assert isic_reference.preprocessing_id == EXTRACTOR_INFOS["effnet-lite0-imagenet"].preprocessing_id
    assert isic_reference.weights_sha256 == sha256_file(effnet_weights_path())
    assert "bicubic" in isic_reference.preprocessing_id and "224" in isic_reference.preprocessing_id


def test_registry_names_the_network_in_every_label() -> None:
    assert EXTRACTOR_INFOS["effnet-lite0-imagenet"].distance_label == "FD (EfficientNet-Lite0, ImageNet)"
    assert EXTRACTOR_INFOS["inception-v3-fid"].distance_label == "FID (Inception-V3)"


def test_inception_is_reported_unavailable_without_its_weights(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DERMAUDIT_INCEPTION_WEIGHTS", raising=False)
    status = available_extractors()
    assert status["effnet-lite0-imagenet"] is None
    assert "DERMAUDIT_INCEPTION_WEIGHTS" in status["inception-v3-fid"]
    with pytest.raises(ExtractorUnavailable, match="DERMAUDIT_INCEPTION_WEIGHTS"):
        get_extractor("inception-v3-fid")
    monkeypatch.setenv("DERMAUDIT_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    assert "does not name an existing file" in available_extractors()["inception-v3-fid"]
    with pytest.raises(ExtractorUnavailable, match="unknown extractor"):
        get_extractor("clip-vit")
