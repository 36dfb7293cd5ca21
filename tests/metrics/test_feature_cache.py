"""Features are cached by image content, a second pass extracts nothing, and concurrent writers never leave a
partial entry. (metrics.features is imported inside the tests so the spawned writer processes stay torch-free.)"""
from __future__ import annotations

import multiprocessing
import shutil

import numpy as np

from metrics.feature_cache import FeatureCache


def test_second_pass_over_the_same_images_extracts_nothing(effnet, isic_paths, tmp_path) -> None:
    from metrics.features import extract_features

    paths = isic_paths[200:206]
    before = effnet.images_embedded
    first = extract_features(paths, cache_dir=tmp_path)
    assert effnet.images_embedded - before == 6
    before = effnet.images_embedded
    second = extract_features(paths, cache_dir=tmp_path)
    assert effnet.images_embedded == before
    np.testing.assert_array_equal(first.features, second.features)


def test_cache_is_keyed_by_content_not_by_name(effnet, isic_paths, tmp_path) -> None:
    from metrics.features import extract_features
    from metrics.image_io import sha256_file

    cache = tmp_path / "cache"
    extract_features(isic_paths[206:208], cache_dir=cache)
    renamed = tmp_path / "renamed-upload.jpg"
    shutil.copyfile(isic_paths[206], renamed)
    before = effnet.images_embedded
    again = extract_features([renamed], cache_dir=cache)
    assert effnet.images_embedded == before
    assert again.keys == (sha256_file(isic_paths[206]),)


def test_identical_images_in_one_call_are_embedded_once(effnet, isic_dir, tmp_path) -> None:
    from metrics.features import extract_features

    # ISIC_0000279 and ISIC_0000280 are byte-identical in the shared set.
    paths = [isic_dir / "images" / "ISIC_0000279.jpg", isic_dir / "images" / "ISIC_0000280.jpg"]
    before = effnet.images_embedded
    result = extract_features(paths, cache_dir=tmp_path)
    assert effnet.images_embedded - before == 1
    np.testing.assert_array_equal(result.features[0], result.features[1])


def test_features_computed_with_other_numerics_are_never_read(effnet, isic_paths, tmp_path) -> None:
    """An entry under the key used before numerics ids (batch-dependent convolutions) or under another precision,
    kernel family or torch version is a miss: recomputed, never mixed with this extractor's features."""
    from metrics.features import extract_features
    from metrics.image_io import sha256_file

    path = isic_paths[210]
    stale = FeatureCache(tmp_path, effnet.extractor_id, effnet.preprocessing_id, effnet.weights_sha256)
    stale.put(sha256_file(path), np.full(1280, 7.0, dtype=np.float32))
    before = effnet.images_embedded
    result = extract_features([path], cache_dir=tmp_path)
    assert effnet.images_embedded - before == 1
    assert not np.any(result.features[0] == 7.0)
    assert result.numerics == effnet.numerics_id


def test_cache_folder_depends_on_extractor_preprocessing_and_weights(tmp_path) -> None:
    key = "ab" * 32
    a = FeatureCache(tmp_path, "effnet-lite0-imagenet", "prep-a", "1" * 64).path_for(key)
    b = FeatureCache(tmp_path, "effnet-lite0-imagenet", "prep-b", "1" * 64).path_for(key)
    c = FeatureCache(tmp_path, "effnet-lite0-imagenet", "prep-a", "2" * 64).path_for(key)
    d = FeatureCache(tmp_path, "inception-v3-fid", "prep-a", "1" * 64).path_for(key)
    assert len({a, b, c, d}) == 4


def _writer(root: str, worker: int, rounds: int) -> None:
    cache = FeatureCache(root, "effnet-lite0-imagenet", "prep", "0" * 64)
    for round_ in range(rounds):
        for key_index in range(8):
            value = np.full(1280, key_index, dtype=np.float32)  # every worker writes the same content per key
            cache.put(f"{key_index:02x}" * 32, value)


def test_concurrent_writers_from_several_processes_leave_only_complete_entries(tmp_path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w, 30)) for w in range(3)]
    for process in workers:
        process.start()
    cache = FeatureCache(tmp_path, "effnet-lite0-imagenet", "prep", "0" * 64)
    seen_partial = 0
    while any(process.is_alive() for process in workers):
        for key_index in range(8):
            path = cache.path_for(f"{key_index:02x}" * 32)
            if path.exists():
                loaded = np.load(path)  # a half-written file would raise or have the wrong shape here
                seen_partial += loaded.shape != (1280,) or not np.all(loaded == key_index)
    for process in workers:
        process.join()
        assert process.exitcode == 0
    assert seen_partial == 0
    for key_index in range(8):
        np.testing.assert_array_equal(cache.get(f"{key_index:02x}" * 32), np.full(1280, key_index, np.float32))
    assert not list(tmp_path.rglob(".tmp-*")), "temporary files left behind"
