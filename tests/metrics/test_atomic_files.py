"""The one atomic-write helper every writer of shared files uses."""
from __future__ import annotations

import os

import pytest

from metrics.atomic_files import write_file_atomically


@pytest.mark.parametrize("durable", [True, False])
def test_writes_the_bytes_and_creates_the_folder(tmp_path, durable):
    target = tmp_path / "a" / "b" / "file.bin"
    assert write_file_atomically(target, b"payload", durable=durable) == target
    assert target.read_bytes() == b"payload"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old contents that are longer")
    write_file_atomically(target, b"new")
    assert target.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[:2])
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: FullDisk(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(OSError, match="No space left"):
        write_file_atomically(target, b"new bytes")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_durable_write_syncs_file_and_folder(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    write_file_atomically(tmp_path / "f", b"x", durable=True)
    assert len(synced) == 2  # the file before the rename, the folder after it
    synced.clear()
    write_file_atomically(tmp_path / "g", b"x", durable=False)
    assert synced == []
