"""On-disk feature cache keyed by content: (image SHA-256, extractor id, preprocessing id, weights SHA-256).

One small .npy file per image. Writes go to a temporary file in the same folder and are renamed with os.replace,
which is atomic on POSIX: several Celery workers may fill the same cache at once and a reader sees either no file
or a complete one, never half of one. Two workers computing the same image write identical bytes, so the last
rename winning is harmless.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from metrics.atomic_files import write_file_atomically


class FeatureCache:
    def __init__(self, root: str | os.PathLike, extractor_id: str, preprocessing_id: str, weights_sha256: str) -> None:
        # The preprocessing id holds characters that do not belong in paths; a digest of it names the folder.
        preprocessing_digest = hashlib.sha256(preprocessing_id.encode()).hexdigest()[:16]
        self.folder = Path(root) / extractor_id / preprocessing_digest / weights_sha256[:16]

    def path_for(self, content_sha256: str) -> Path:
        if len(content_sha256) < 8 or not all(c in "0123456789abcdef" for c in content_sha256):
            raise ValueError(f"cache keys must be lowercase hex content hashes, got {content_sha256!r}")
        return self.folder / content_sha256[:2] / f"{content_sha256}.npy"

    def get(self, content_sha256: str) -> np.ndarray | None:
        path = self.path_for(content_sha256)
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return None  # unreadable entry: recompute and overwrite it

    def put(self, content_sha256: str, feature: np.ndarray) -> None:
        path = self.path_for(content_sha256)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(feature, dtype=np.float32), allow_pickle=False)
        # A cache entry can always be recomputed: no fsync (it would cost more than extracting the feature).
        write_file_atomically(path, buffer.getvalue(), durable=False)
