"""Atomic file writes: a name exists only with all of its bytes.

The one implementation of "temporary file in the same folder, then rename" for every library and service module
that writes results others read concurrently (feature cache, image blobs, checkpoints, reports, blinded
renderings). It lives in `metrics/` because that is the lowest Django-free package: `auditor/generation/baselines`,
`deepfake_detector` and the Django apps may all import it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_file_atomically(target: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `target` through a temporary file and `os.replace` (atomic on POSIX).

    A crash mid-write leaves at most a hidden `.tmp-*` file, never a truncated `target`; concurrent writers of the
    same bytes are harmless (the last rename wins). With `durable=True` the file is fsynced before the rename and
    the folder after it, so the name survives a power loss; with `durable=False` the caller flushes the disk later
    (e.g. one `syncfs` for a whole chunk of image blobs, which is far cheaper than an fsync per file). The parent
    folder is created if missing.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return target
