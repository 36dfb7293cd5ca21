"""Import images into an ImageSet from uploads, zip archives and folders.

Safety properties (each has a test in tests/auditor/ingestion/):
- a bad file becomes an IngestError naming the file and the reason; the rest of the batch still imports;
- archives are read entry by entry into memory, never extracted, with limits on declared and actual size,
  compression ratio, unsafe paths, symbolic links and nested archives;
- blobs are written content-addressed and atomically (temporary file + rename) *before* the database rows
  that point at them, and rows are inserted a chunk per transaction, so a crash leaves no half-registered
  image and a retry stores nothing twice;
- importing the same files again adds nothing (unique pixel hash per set);
- a dropped database connection (server restart, fail-over, killed backend) is retried on a fresh connection a
  few times; a chunk is re-inserted idempotently, so a commit whose acknowledgement was lost adds nothing twice;
- a failed import is marked failed with the set's manifest recomputed from its committed rows, and a storage
  write error (disk full, I/O error) stops the import with a message naming the file and the reason
  (these two: tests/auditor/test_faults.py).
"""
from __future__ import annotations

import ctypes
import errno
import logging
import lzma
import os
import shutil
import stat
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.utils import timezone

from auditor.ingestion.rules import (
    LABELS_FILE_NAME,
    IngestRejected,
    LabelTable,
    is_side_file,
    normalise_image,
    parse_labels_csv,
)
from auditor.models import DuplicateRecord, Image, ImageSet, IngestError, IngestJob
from metrics.atomic_files import write_file_atomically

CHUNK_SIZE = 64
IGNORED_NAMES = {".DS_Store", "Thumbs.db"}
ZIP_MAGIC = b"PK\x03\x04"
ARCHIVE_SUFFIXES = (".zip", ".7z", ".rar", ".tar", ".tgz", ".gz", ".bz2", ".xz")
NESTED_ARCHIVE = "nested archive: not imported (unpack it and upload its contents)"
# Waits before each retry of a database step whose connection dropped; then the import fails.
RECONNECT_WAITS_S = (0.5, 2.0, 5.0)

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    """One candidate file: a display name (relative, for labels and errors) and a way to read its bytes."""

    name: str
    read: Callable[[], bytes]
    display: str = ""  # how errors name it: "upload.zip:images/a.png"; defaults to name

    def __post_init__(self) -> None:
        self.display = self.display or self.name


class ArchiveRejected(Exception):
    pass


def describe_os_error(exc: OSError) -> str:
    """'No space left on device (ENOSPC)': the reason a user can act on, without a traceback."""
    code = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({code})" if code else reason


class MediaWriteError(OSError):
    """A stored file could not be written (disk full, I/O error). Not a fault of the file: the import stops, and
    what was committed before stays; re-running it once the storage is fixed adds only what is missing."""

    def __init__(self, file_name: str, cause: OSError):
        super().__init__(cause.errno, describe_os_error(cause))
        self.file_name = file_name
        self.message = f"could not store {file_name}: {describe_os_error(cause)}"

    def __str__(self) -> str:
        return self.message


def _connection_dropped(before) -> bool:
    """After a database error: was it the connection itself (killed backend, server restart, network)?"""
    if connection.connection is None or connection.connection is not before:
        return True  # Django already had to drop it (a rollback on a dead connection closes it)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return True
    return False


def with_reconnect(operation: Callable[[], object], what: str):
    """Run a database step; when its connection dropped, retry it on a fresh connection (RECONNECT_WAITS_S).

    Only for steps that are safe to repeat (one transaction each, idempotent), and never inside a caller's
    transaction, whose earlier work died with the connection."""
    for wait in (*RECONNECT_WAITS_S, None):
        before = None
        try:
            connection.ensure_connection()
            before = connection.connection
            return operation()
        except (IntegrityError, DataError):
            raise
        except DatabaseError as exc:
            transient = isinstance(exc, (OperationalError, InterfaceError))
            if wait is None or connection.in_atomic_block or not (transient or _connection_dropped(before)):
                raise
            logger.warning("database connection lost during %s (%s); retrying in %.1f s", what, exc, wait)
            connection.close()
            time.sleep(wait)


def blob_name(sha256: str, suffix: str) -> str:
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}"


def store_blob(name: str, data: bytes, *, durable: bool = True) -> Path | None:
    """Write content-addressed bytes once. On local disk: temp file + rename, so a name that exists always
    holds complete bytes (a crash mid-write leaves only a temp file). With durable=False the caller must call
    `make_durable` on the returned paths before it commits rows that point at them (one sync per chunk is
    ~30x cheaper than an fsync per file)."""
    if not isinstance(default_storage, FileSystemStorage):
        if not default_storage.exists(name):
            # Object stores (django-storages) make a PUT visible, and durable, only once complete.
            default_storage.save(name, ContentFile(data))
        return None
    target = Path(default_storage.path(name))
    if target.exists() and target.stat().st_size == len(data):
        return None
    return write_file_atomically(target, data, durable=durable)


def _syncfs(path: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY)
    except (OSError, AttributeError):
        return False
    try:
        return getattr(libc, "syncfs", None) is not None and libc.syncfs(fd) == 0
    finally:
        os.close(fd)


def make_durable(paths: list[Path]) -> None:
    """Flush written blobs (and their renames) to disk: one syncfs of the media file system where Linux
    offers it, else an fsync per file and folder."""
    if not paths:
        return
    if _syncfs(paths[0].parent):
        return
    for path in paths:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    for folder in {p.parent for p in paths}:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _limits() -> dict[str, int | float]:
    return {
        "max_pixels": settings.DERMAUDIT_MAX_IMAGE_PIXELS,
        "max_bytes": settings.DERMAUDIT_MAX_FILE_BYTES,
        "max_total": settings.DERMAUDIT_MAX_ZIP_UNCOMPRESSED,
        "max_ratio": settings.DERMAUDIT_MAX_ZIP_RATIO,
    }


def _unsafe_archive_path(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return any(part == ".." for part in PurePosixPath(name).parts)


def _zip_entries(archive: Path, display: str, errors: list[tuple[str, str]]) -> tuple[list[Entry], bytes | None]:
    """Validate an archive's directory and return readers for its acceptable entries (and labels.csv bytes)."""
    limits = _limits()
    try:
        zf = zipfile.ZipFile(archive)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveRejected(f"not a readable zip archive: {exc}") from None
    declared_total = sum(info.file_size for info in infos)
    if declared_total > limits["max_total"]:
        raise ArchiveRejected(
            f"archive expands to {declared_total:,} bytes, over the limit of {limits['max_total']:,} bytes (zip-bomb guard)"
        )
    entries: list[Entry] = []
    labels: bytes | None = None
    budget = {"left": int(limits["max_total"])}

    def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
        def read() -> bytes:
            cap = min(info.file_size, int(limits["max_bytes"]))
            try:
                with zf.open(info) as handle:
                    data = handle.read(cap + 1)
            # Each decompressor fails its own way on corrupt data: zlib.error, OSError (bz2), LZMAError,
            # RuntimeError/NotImplementedError (unknown method, password needed), ValueError, EOFError.
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, RuntimeError, ValueError) as exc:
                raise IngestRejected(f"corrupt archive entry: {exc}") from None
            # Declared sizes can lie; what is actually inflated is bounded here.
            if len(data) > cap:
                raise IngestRejected(
                    f"entry inflates beyond its declared {info.file_size:,} bytes or the per-file limit (zip-bomb guard)"
                )
            budget["left"] -= len(data)
            if budget["left"] < 0:
                raise IngestRejected("archive exceeded its total uncompressed limit (zip-bomb guard)")
            return data

        return read

    for position, info in enumerate(infos, start=1):
        name = info.filename
        shown = f"{display}:{name}"
        if not name:  # zipfile cuts a name at its first NUL byte, so a crafted one can end up empty
            errors.append((shown, f"archive entry {position} has an empty name; not read"))
            continue
        if info.is_dir() or PurePosixPath(name).name in IGNORED_NAMES or name.startswith("__MACOSX/"):
            continue
        if _unsafe_archive_path(name):
            errors.append((shown, "unsafe path in archive (absolute, drive or parent-directory component); not read"))
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            errors.append((shown, "symbolic link in archive; not followed"))
            continue
        if info.flag_bits & 0x1:
            errors.append((shown, "encrypted archive entry; not supported"))
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1024 * 1024 and ratio > limits["max_ratio"]:
            errors.append((shown, f"compression ratio {ratio:,.0f}:1 over the limit of {limits['max_ratio']:,.0f}:1 (zip-bomb guard)"))
            continue
        if PurePosixPath(name).name == LABELS_FILE_NAME:
            try:
                labels = reader(info)()
            except IngestRejected as exc:
                errors.append((shown, exc.reason))
            continue
        if is_side_file(name):
            continue
        entries.append(Entry(name=name, read=reader(info), display=shown))
    return entries, labels


def _folder_entries(folder: Path, errors: list[tuple[str, str]]) -> tuple[list[Entry], bytes | None]:
    entries: list[Entry] = []
    labels: bytes | None = None
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for dirname in list(dirs):
            if (Path(root) / dirname).is_symlink():
                errors.append((str((Path(root) / dirname).relative_to(folder)), "symbolic link to a folder; not followed"))
        for filename in sorted(files):
            path = Path(root) / filename
            relative = path.relative_to(folder).as_posix()
            if filename in IGNORED_NAMES:
                continue
            if path.is_symlink():
                errors.append((relative, "symbolic link; not followed"))
                continue
            if relative == LABELS_FILE_NAME:
                labels = path.read_bytes()
                continue
            if is_side_file(relative):
                continue
            entries.append(Entry(name=relative, read=lambda p=path: _read_file_capped(p)))
    return entries, labels


def _read_file_capped(path: Path) -> bytes:
    cap = settings.DERMAUDIT_MAX_FILE_BYTES
    size = path.stat().st_size
    if size > cap:
        raise IngestRejected(f"file is {size:,} bytes, over the per-file limit of {cap:,} bytes")
    return path.read_bytes()


def collect_entries(sources: list[Path], errors: list[tuple[str, str]]) -> tuple[list[Entry], LabelTable | None]:
    """Expand sources (image files, zip files, folders) into entries and one merged labels table."""
    entries: list[Entry] = []
    label_tables: list[LabelTable] = []
    for source in sources:
        display = source.name
        if source.is_symlink():
            errors.append((display, "symbolic link; not followed"))
            continue
        if source.is_dir():
            found, labels = _folder_entries(source, errors)
        elif source.suffix.lower() == ".zip" or _starts_with(source, ZIP_MAGIC):
            try:
                found, labels = _zip_entries(source, display, errors)
            except ArchiveRejected as exc:
                errors.append((display, str(exc)))
                continue
        elif source.name == LABELS_FILE_NAME:
            found, labels = [], source.read_bytes()
        elif is_side_file(source.name):
            continue
        else:
            found, labels = [Entry(name=display, read=lambda p=source: _read_file_capped(p))], None
        entries.extend(found)
        if labels is not None:
            table = parse_labels_csv(labels, f"{display}/{LABELS_FILE_NAME}" if source.is_dir() else LABELS_FILE_NAME)
            errors.extend((LABELS_FILE_NAME, message) for message in table.errors)
            label_tables.append(table)
    merged = None
    if label_tables:
        merged = LabelTable({k: v for t in label_tables for k, v in t.by_path.items()}, [])
    return entries, merged


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


class _Batch:
    """Accumulates normalised images and flushes them a chunk per transaction."""

    def __init__(self, job: IngestJob):
        self.job = job
        self.image_set = job.image_set
        self.known: dict[str, tuple[int | None, str]] = {
            pixel: (pk, name) for pk, pixel, name in self.image_set.images.values_list("id", "pixel_sha256", "original_name")
        }
        self.pending: list[Image] = []
        self.pending_duplicates: list[tuple[str, str]] = []
        self.pending_errors: list[tuple[str, str]] = []
        self.written: list[Path] = []
        self.manifest_cleared = False

    def add_image(self, image: Image) -> None:
        self.known[image.pixel_sha256] = (None, image.original_name)
        self.pending.append(image)
        self.job.imported += 1

    def add(self, name: str, data: bytes, labels: LabelTable | None, display: str = "") -> None:
        if name.lower().endswith(ARCHIVE_SUFFIXES) or data.startswith(ZIP_MAGIC):
            raise IngestRejected(NESTED_ARCHIVE)
        limits = _limits()
        normalised = normalise_image(data, max_pixels=int(limits["max_pixels"]), max_bytes=int(limits["max_bytes"]))
        seen = self.known.get(normalised.pixel_sha256)
        if seen is not None:
            if seen[1] == name:
                self.job.skipped += 1  # the same file imported again: idempotent, nothing to record
            else:
                self.pending_duplicates.append((name, normalised.pixel_sha256))
                self.job.duplicates += 1
            return
        stored_name = blob_name(normalised.sha256, normalised.stored_suffix)
        try:
            written = store_blob(stored_name, normalised.stored_bytes, durable=False)
        except OSError as exc:
            raise MediaWriteError(display or name, exc) from exc
        if written is not None:
            self.written.append(written)
        image_labels = labels.lookup(name) if labels else None
        self.add_image(
            Image(
                image_set=self.image_set,
                sha256=normalised.sha256,
                pixel_sha256=normalised.pixel_sha256,
                source_sha256=normalised.source_sha256,
                file=stored_name,
                original_name=name[:500],
                width=normalised.width,
                height=normalised.height,
                original_format=normalised.original_format,
                original_mode=normalised.original_mode,
                normalisation_notes=normalised.notes,
                diagnosis=image_labels.diagnosis if image_labels else "",
                fitzpatrick=image_labels.fitzpatrick if image_labels else None,
                acquisition=image_labels.acquisition if image_labels else "",
                extra_labels=image_labels.extra if image_labels else {},
            )
        )

    def error(self, name: str, reason: str) -> None:
        self.pending_errors.append((name, reason))
        self.job.failed += 1

    def flush(self, finish: Callable[[], None] | None = None) -> None:
        """Commit the pending rows (and `finish`, the job's last step) in one transaction; safe to repeat."""
        make_durable(self.written)  # blobs reach the disk before any row that points at them is committed
        self.written = []
        with transaction.atomic():
            if self.pending:
                self._forget_uncommitted()
            clearing = bool(self.pending) and not self.manifest_cleared
            if clearing:
                # Until the import finishes (or is marked failed) the set's manifest is unknown, never stale.
                ImageSet.objects.filter(pk=self.image_set.pk).update(manifest_sha256="")
            created = Image.objects.bulk_create(self.pending)
            for image in created:
                self.known[image.pixel_sha256] = (image.pk, image.original_name)
            if any(image.pk is None for image in created):  # backends without RETURNING
                ids = dict(self.image_set.images.filter(pixel_sha256__in=[i.pixel_sha256 for i in created]).values_list("pixel_sha256", "id"))
                for pixel, pk in ids.items():
                    self.known[pixel] = (pk, self.known[pixel][1])
            existing_dupes = set(self.image_set.duplicate_records.values_list("file_name", "duplicate_of__pixel_sha256"))
            DuplicateRecord.objects.bulk_create(
                [
                    DuplicateRecord(image_set=self.image_set, job=self.job, file_name=name[:500], duplicate_of_id=self.known[pixel][0])
                    for name, pixel in self.pending_duplicates
                    if (name[:500], pixel) not in existing_dupes
                ]
            )
            existing_errors = set(self.image_set.ingest_errors.values_list("file_name", "reason"))
            IngestError.objects.bulk_create(
                [
                    IngestError(image_set=self.image_set, job=self.job, file_name=name[:500], reason=reason)
                    for name, reason in self.pending_errors
                    if (name[:500], reason) not in existing_errors
                ]
            )
            self.job.save(update_fields=["processed", "imported", "duplicates", "failed", "skipped", "total"])
            if finish is not None:
                finish()
        self.manifest_cleared = self.manifest_cleared or clearing
        self.pending, self.pending_duplicates, self.pending_errors = [], [], []

    def _forget_uncommitted(self) -> None:
        """Before (re)inserting a chunk: drop ids a rolled-back attempt assigned, and rows that attempt did commit
        (its acknowledgement lost with the connection), so that a repeated flush inserts each image once."""
        committed = dict(self.image_set.images.filter(pixel_sha256__in=[i.pixel_sha256 for i in self.pending])
                         .values_list("pixel_sha256", "id"))
        for image in self.pending:
            image.pk, image._state.adding = None, True
        for pixel, pk in committed.items():
            self.known[pixel] = (pk, self.known[pixel][1])
        self.pending = [image for image in self.pending if image.pixel_sha256 not in committed]


def run_ingest(job: IngestJob, sources: list[Path], *, after_chunk: Callable[[IngestJob], None] | None = None) -> IngestJob:
    """Import `sources` (files, zips, folders) into `job.image_set`, updating the job's progress a chunk at a time."""
    source_errors: list[tuple[str, str]] = []
    entries, labels = collect_entries(sources, source_errors)
    return ingest_entries(job, entries, labels, source_errors, after_chunk=after_chunk)


def ingest_entries(
    job: IngestJob,
    entries: list[Entry],
    labels: LabelTable | None = None,
    source_errors: list[tuple[str, str]] = (),
    *,
    after_chunk: Callable[[IngestJob], None] | None = None,
) -> IngestJob:
    """The one registration path for every source (uploads, folders, generated samples)."""
    job.status = IngestJob.Status.RUNNING
    job.started_at = timezone.now()
    job.processed = job.imported = job.duplicates = job.failed = job.skipped = 0
    job.total = len(entries)
    with_reconnect(job.save, "starting the import")
    batch = with_reconnect(lambda: _Batch(job), "reading the set")
    for name, reason in source_errors:
        batch.error(name, reason)
    for index, entry in enumerate(entries, start=1):
        try:
            batch.add(entry.name, entry.read(), labels, display=entry.display)
        except IngestRejected as exc:
            batch.error(entry.display, exc.reason)
        job.processed = index
        if index % CHUNK_SIZE == 0:
            with_reconnect(batch.flush, f"committing files up to {index} of {len(entries)}")
            if after_chunk:
                after_chunk(job)

    def finish() -> None:
        # The last rows, the manifest over all rows and the job's success commit together.
        job.image_set.refresh_manifest()
        job.status = IngestJob.Status.SUCCEEDED
        job.finished_at = timezone.now()
        job.message = (
            f"{job.imported} imported, {job.duplicates} duplicates, {job.skipped} already present, {job.failed} errors"
        )
        job.save()

    with_reconnect(lambda: batch.flush(finish), "finishing the import")
    return job


def mark_failed(job: IngestJob, message: str) -> None:
    """Record the failure (on a fresh connection if the old one dropped) with the manifest of what was committed."""

    def record() -> None:
        with transaction.atomic():
            ImageSet.objects.get(pk=job.image_set_id).refresh_manifest()
            IngestJob.objects.filter(pk=job.pk).update(status=IngestJob.Status.FAILED, message=message[:2000],
                                                       finished_at=timezone.now())

    with_reconnect(record, "recording the failed import")


def remove_staging(job: IngestJob) -> None:
    if job.staging_dir:
        shutil.rmtree(job.staging_dir, ignore_errors=True)


def delete_image_set(image_set: ImageSet) -> None:
    """Delete a set and the blobs no other set references (blobs are shared by content)."""
    blobs = set(image_set.images.values_list("file", flat=True))
    with transaction.atomic():
        image_set.delete()
        still_used = set(Image.objects.filter(file__in=blobs).values_list("file", flat=True))
    for name in blobs - still_used:
        default_storage.delete(name)
