"""Every kind of bad input gets an IngestError naming the file and the reason; the good files still import."""
from __future__ import annotations

import io
import stat
import zipfile

import pytest
from PIL import Image as PILImage

from tests.auditor.conftest import image_bytes, zip_bytes
from tests.auditor.ingest_helpers import errors_by_file, ingest_paths, stored_blob_files

pytestmark = pytest.mark.django_db


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_corrupt_truncated_nonimage_and_empty_files_are_reported_and_the_rest_imports(image_set, tmp_path):
    good = _write(tmp_path, "in/good.png", image_bytes())
    jpeg = image_bytes("JPEG", size=(64, 48), seed=1, quality=90)
    _write(tmp_path, "in/truncated.jpg", jpeg[: len(jpeg) // 2])
    png = image_bytes(seed=2)
    _write(tmp_path, "in/corrupt.png", png[:300] + b"\x00" * 200 + png[500:])
    _write(tmp_path, "in/notes.jpg", b"this is not an image at all\n" * 10)
    _write(tmp_path, "in/empty.png", b"")

    job = ingest_paths(image_set, [good.parent])

    errors = errors_by_file(image_set)
    assert errors["empty.png"] == "empty file (0 bytes)"
    assert errors["notes.jpg"] == "not an image file (Pillow cannot identify its format)"
    assert errors["truncated.jpg"].startswith("corrupt or truncated image: ")
    assert errors["corrupt.png"].startswith("corrupt or truncated image: ")
    assert set(errors) == {"empty.png", "notes.jpg", "truncated.jpg", "corrupt.png"}
    assert list(image_set.images.values_list("original_name", flat=True)) == ["good.png"]
    assert (job.imported, job.failed, job.status) == (1, 4, "succeeded")
    assert len(stored_blob_files()) == 1


def test_image_over_pixel_limit_is_refused_before_decoding(image_set, tmp_path, settings):
    settings.DERMAUDIT_MAX_IMAGE_PIXELS = 10_000
    # A 2000x2000 single-colour PNG is ~12 KB on disk but 4 Mpx decoded: a small decompression bomb.
    bomb = io.BytesIO()
    PILImage.new("RGB", (2000, 2000), (200, 150, 120)).save(bomb, format="PNG")
    _write(tmp_path, "in/bomb.png", bomb.getvalue())
    _write(tmp_path, "in/ok.png", image_bytes(size=(50, 50)))

    ingest_paths(image_set, [tmp_path / "in"])

    assert errors_by_file(image_set) == {
        "bomb.png": "image is 2000x2000 = 4,000,000 pixels, over the limit of 10,000 pixels (decompression-bomb guard)"
    }
    assert image_set.images.count() == 1


def test_zip_bomb_total_size_rejects_whole_archive(image_set, tmp_path, settings):
    settings.DERMAUDIT_MAX_ZIP_UNCOMPRESSED = 1_000_000
    archive = _write(tmp_path, "bomb.zip", zip_bytes({"a.png": image_bytes(), "zeros.bin": b"\0" * 2_000_000}))

    job = ingest_paths(image_set, [archive])

    assert errors_by_file(image_set) == {
        "bomb.zip": "archive expands to 2,000,111 bytes, over the limit of 1,000,000 bytes (zip-bomb guard)".replace(
            "2,000,111", f"{2_000_000 + len(image_bytes()):,}"
        )
    }
    assert image_set.images.count() == 0 and job.status == "succeeded"


def test_zip_bomb_ratio_rejects_the_entry_and_keeps_the_others(image_set, tmp_path):
    archive = _write(tmp_path, "ratio.zip", zip_bytes({"ok.png": image_bytes(), "flat.bmp": b"\0" * 5_000_000}))

    ingest_paths(image_set, [archive])

    reason = errors_by_file(image_set)["ratio.zip:flat.bmp"]
    assert reason.startswith("compression ratio ") and reason.endswith(":1 over the limit of 100:1 (zip-bomb guard)")
    assert list(image_set.images.values_list("original_name", flat=True)) == ["ok.png"]


def test_zip_entry_that_inflates_beyond_its_declared_size_is_refused(image_set, tmp_path):
    data = bytearray(zip_bytes({"liar.png": image_bytes(size=(64, 64))}, compression=zipfile.ZIP_STORED))
    # Shrink the declared uncompressed size in the central directory (a classic header lie).
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.infolist()[0]
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    archive = _write(tmp_path, "liar.zip", bytes(data))

    ingest_paths(image_set, [archive])

    reason = errors_by_file(image_set)["liar.zip:liar.png"]
    # zipfile stops at the declared size, and the stream's CRC then fails: refused either way.
    assert reason.endswith("(zip-bomb guard)") or reason == "corrupt archive entry: Bad CRC-32 for file 'liar.png'"
    assert image_set.images.count() == 0
    assert info.file_size > 100


@pytest.mark.parametrize("name", ["../escape.png", "a/../../escape.png", "/etc/absolute.png", "C:/windows.png", "dir\\back.png"])
def test_unsafe_paths_in_zip_are_refused_and_nothing_is_written_outside_media(image_set, tmp_path, name):
    archive = _write(tmp_path, "evil.zip", zip_bytes({name: image_bytes(), "fine.png": image_bytes(seed=5)}))

    ingest_paths(image_set, [archive])

    assert errors_by_file(image_set) == {
        f"evil.zip:{name}": "unsafe path in archive (absolute, drive or parent-directory component); not read"
    }
    assert list(image_set.images.values_list("original_name", flat=True)) == ["fine.png"]
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    media = tmp_path / "media"
    assert {p for p in written if media not in p.parents} == {archive}
    assert not any(p.name in {"escape.png", "absolute.png", "windows.png"} for p in written)


def test_symlinks_in_zip_and_folder_are_not_followed(image_set, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("real.png", image_bytes())
    archive_path = _write(tmp_path, "links.zip", buffer.getvalue())
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(image_bytes(seed=3))
    secret = _write(tmp_path, "outside/secret.png", image_bytes(seed=4))
    (folder / "b.png").symlink_to(secret)
    (folder / "sub").symlink_to(secret.parent, target_is_directory=True)

    ingest_paths(image_set, [archive_path, folder])

    assert errors_by_file(image_set) == {
        "links.zip:link.png": "symbolic link in archive; not followed",
        "b.png": "symbolic link; not followed",
        "sub": "symbolic link to a folder; not followed",
    }
    assert sorted(image_set.images.values_list("original_name", flat=True)) == ["a.png", "real.png"]


def test_nested_zip_is_reported_not_expanded(image_set, tmp_path):
    inner = zip_bytes({"inner.png": image_bytes(seed=7)})
    archive = _write(tmp_path, "outer.zip", zip_bytes({"inner.zip": inner, "outer.png": image_bytes(seed=8)}))

    ingest_paths(image_set, [archive])

    assert errors_by_file(image_set) == {
        "outer.zip:inner.zip": "nested archive: not imported (unpack it and upload its contents)"
    }
    assert list(image_set.images.values_list("original_name", flat=True)) == ["outer.png"]


def test_unreadable_zip_is_reported(image_set, tmp_path):
    archive = _write(tmp_path, "broken.zip", b"PK\x03\x04" + b"garbage" * 20)
    ingest_paths(image_set, [archive])
    assert errors_by_file(image_set)["broken.zip"].startswith("not a readable zip archive: ")


def test_oversized_file_is_refused(image_set, tmp_path, settings):
    settings.DERMAUDIT_MAX_FILE_BYTES = 1000
    _write(tmp_path, "in/big.png", image_bytes(size=(100, 100)))
    ingest_paths(image_set, [tmp_path / "in"])
    assert errors_by_file(image_set)["big.png"].endswith("over the per-file limit of 1,000 bytes")
