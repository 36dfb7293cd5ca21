"""Hostile uploads: property-based fuzzing of the REST upload, the web upload form and the zip path.

Hypothesis generates hostile file names and contents (random bytes under image names, truncated and byte-flipped
real ISIC / PAD-UFES files read from ../shared/data, crafted and corrupted zips) and posts them as raw multipart
bodies, so the names reach Django's parser exactly as written (the test client would strip paths itself). The
import task runs eagerly when the request's transaction commits. After every example:

- the response is a 202, or a 400 with nothing staged (no file received at all, or Django's multipart parser
  giving up on the body after a part it dropped: a name that is not UTF-8, or '..'), never a 500;
- the import job succeeded: an exception escaping the importer would have marked it failed;
- every received file and every zip entry became an image, a duplicate, or an ingest error that names it and
  gives a reason (side files such as notes.txt are skipped by design);
- nothing was written outside MEDIA_ROOT (a sandbox around it, the upload temp folder and Python's temp folder
  are snapshotted), and inside MEDIA_ROOT only content-addressed blobs remain;
- the images stored before the fuzzing (rows and blob bytes) are unchanged.

Hypothesis runs derandomised with no example database, so every run sends the same inputs.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from django.http.multipartparser import MultiPartParser
from django.test import Client
from hypothesis import HealthCheck, example, given, settings as hypothesis_settings, strategies as st
from PIL import Image as PILImage

from auditor.ingestion.importer import IGNORED_NAMES, blob_name
from auditor.ingestion.rules import LABELS_FILE_NAME, is_side_file
from auditor.models import DuplicateRecord, Image, ImageSet, IngestError, IngestJob

from tests.auditor.conftest import api_client_for
from tests.auditor.hostile_zips import ARCHIVE_MUTATIONS, ENTRY_KINDS, ESCAPE_MARKER, EXPECTED_REASON, build_zip, mutate_archive
from tests.auditor.ingest_helpers import ingest_paths

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning"),  # Pillow, on byte-flipped TIFFs
]

FUZZ = hypothesis_settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
BOUNDARY = b"dermaudit-fuzz-boundary-4e1f0b7c"
ZIP_MAGIC = b"PK\x03\x04"
IMAGE_SUFFIXES = [b".png", b".jpg", b".jpeg", b".tif", b".tiff", b".bmp", b".webp", b".gif", b".PNG", b".JPG"]
MAGIC_PREFIXES = {
    "png": b"\x89PNG\r\n\x1a\n",
    "png-ihdr": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "tiff-le": b"II*\x00",
    "tiff-be": b"MM\x00*",
    "bmp": b"BM",
    "webp": b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    "gif": b"GIF89a",
    "zip": ZIP_MAGIC,
}
_SET_NAMES = itertools.count()
TIFF_16BIT = 6  # index in real_images
REAL_IMAGE_COUNT = 12


# --- sandbox, clients, the images stored before the fuzzing -------------------------------------------------

@dataclass
class Sandbox:
    root: Path
    media: Path

    def snapshot(self) -> dict[str, tuple[bool, int]]:
        """Everything under the sandbox except MEDIA_ROOT (which is checked file by file)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            if path == self.media or self.media in path.parents:
                continue
            found[path.relative_to(self.root).as_posix()] = (path.is_dir(), 0 if path.is_dir() else path.lstat().st_size)
        return found


@pytest.fixture
def sandbox(tmp_path, settings, monkeypatch) -> Sandbox:
    # MEDIA_ROOT sits six levels below the sandbox, so any "../" chain the fuzzer uses (at most six) that a
    # careless extractor followed from a staging folder would still land inside the snapshotted sandbox.
    root = tmp_path / "sandbox"
    media = root / "srv" / "dermaudit" / "media"
    for folder in (media, root / "upload-tmp", root / "tmp"):
        folder.mkdir(parents=True)
    settings.MEDIA_ROOT = media
    settings.FILE_UPLOAD_TEMP_DIR = str(root / "upload-tmp")
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024  # bigger parts go through temporary files on disk
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    return Sandbox(root=root, media=media)


def _reencoded(source: Path, mode: str, fmt: str, **options) -> bytes:
    with PILImage.open(source) as image:
        frames = [image.convert(mode)]
        if options.pop("two_frames", False):
            frames.append(frames[0].rotate(90))
        buffer = io.BytesIO()
        frames[0].save(buffer, format=fmt, save_all=len(frames) > 1, append_images=frames[1:], **options)
        return buffer.getvalue()


@pytest.fixture
def real_images(isic_dir, pad_dir) -> list[bytes]:
    """Real dermatology files read by path from the shared data (0-2: ISIC JPEGs, 3-5: PAD-UFES PNGs), then the
    first ISIC picture re-encoded the ways the importer must normalise (TIFF_16BIT onwards)."""
    paths = sorted((isic_dir / "images").glob("*.jpg"))[:3] + sorted((pad_dir / "images").glob("*.png"))[:3]
    source = paths[0]
    return [p.read_bytes() for p in paths] + [
        _reencoded(source, "I;16", "TIFF"),
        _reencoded(source, "RGB", "TIFF", two_frames=True, compression="tiff_deflate"),
        _reencoded(source, "RGB", "WEBP", quality=80),
        _reencoded(source, "CMYK", "JPEG"),
        _reencoded(source, "P", "PNG", transparency=0),
        _reencoded(source, "RGB", "BMP"),
    ]


@pytest.fixture
def clients(quality_user) -> dict[str, Client]:
    web = Client()
    web.force_login(quality_user)
    return {"rest": api_client_for(quality_user), "web": web}


@dataclass
class StoredBefore:
    image_set: ImageSet
    rows: list[dict]
    blobs: dict[Path, str]


@pytest.fixture
def stored_before(org, sandbox, isic_dir, pad_dir) -> StoredBefore:
    image_set = ImageSet.objects.create(organisation=org, name="stored-before-fuzzing", kind=ImageSet.Kind.REFERENCE)
    sources = sorted((isic_dir / "images").glob("*.jpg"))[:2] + sorted((pad_dir / "images").glob("*.png"))[:1]
    job = ingest_paths(image_set, sources)
    assert job.imported == 3, job.message
    rows = list(image_set.images.order_by("id").values())
    blobs = {sandbox.media / row["file"]: row["sha256"] for row in rows}
    assert all(hashlib.sha256(path.read_bytes()).hexdigest() == sha for path, sha in blobs.items())
    return StoredBefore(image_set=image_set, rows=rows, blobs=blobs)


# --- raw multipart ------------------------------------------------------------------------------------------

def multipart_body(parts: list[tuple[bytes, bytes]]) -> bytes:
    lines: list[bytes] = []
    for name, data in parts:
        lines += [b"--" + BOUNDARY, b'Content-Disposition: form-data; name="files"; filename="' + name + b'"',
                  b"Content-Type: application/octet-stream", b"", data]
    lines += [b"--" + BOUNDARY + b"--", b""]
    return b"\r\n".join(lines)


def name_django_receives(raw: bytes) -> str | None:
    """The name Django's multipart parser hands to the view, or None when it drops the part: a header that is
    not UTF-8 is ignored (the part is then not a file), and '', '.', '..' are discarded."""
    try:
        decoded = raw.decode()
    except UnicodeDecodeError:
        return None
    return MultiPartParser.sanitize_file_name(None, decoded) or None


def post_files(channel: str, clients: dict, image_set: ImageSet, parts: list[tuple[bytes, bytes]], capture):
    url = f"/api/image-sets/{image_set.pk}/upload/" if channel == "rest" else f"/sets/{image_set.pk}/upload/"
    body = multipart_body(parts)
    with capture(execute=True):
        return clients[channel].generic("POST", url, body, content_type=f"multipart/form-data; boundary={BOUNDARY.decode()}")


# --- what must hold after every example ---------------------------------------------------------------------

@dataclass
class Expected:
    """One file or zip entry that must end up as an image, a duplicate or an ingest error."""

    name: str  # as an image's original_name or a duplicate's file_name would record it
    display: str  # as an ingest error would name it
    container: str | None = None  # the staged zip it came from (a whole-archive error then covers it)


def expected_outcomes(staged_name: str, data: bytes) -> list[Expected]:
    if staged_name.lower().endswith(".zip") or data.startswith(ZIP_MAGIC):
        try:
            infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
        except Exception:  # an unreadable archive: the importer must reject it as a whole
            return [Expected(name=staged_name, display=staged_name)]
        expected = []
        for info in infos:
            base = PurePosixPath(info.filename).name
            if info.filename.endswith("/") or base in IGNORED_NAMES or info.filename.startswith("__MACOSX/"):
                continue
            if base == LABELS_FILE_NAME or is_side_file(info.filename):
                continue
            expected.append(Expected(name=info.filename, display=f"{staged_name}:{info.filename}", container=staged_name))
        return expected
    if staged_name == LABELS_FILE_NAME or is_side_file(staged_name):
        return []
    return [Expected(name=staged_name, display=staged_name)]


def check_upload(response, parts, image_set: ImageSet, sandbox: Sandbox, before: dict, stored: StoredBefore,
                 seen: Counter) -> IngestJob | None:
    assert response.status_code != 500, response.content[:2000]
    seen[f"HTTP {response.status_code}"] += 1
    received = [name_django_receives(name) for name, _ in parts]
    received_parts = [(name, data) for (_, data), name in zip(parts, received) if name is not None]
    if response.status_code == 400:
        # Two clear refusals, with nothing staged: no file received at all ("files" names the field), or
        # Django's parser giving up on the body after a part it dropped ("Multipart form parse error"; the web
        # page gets Django's plain 400 page from the same exception).
        assert not IngestJob.objects.filter(image_set=image_set).exists()
        assert not received_parts or None in received, response.content[:2000]
        assert any(word in response.content.lower() for word in (b"files", b"multipart", b"bad request")), response.content
        job = None
    else:
        assert response.status_code == 202, response.content[:2000]
        body = response.json()
        job = IngestJob.objects.get(pk=body.get("id") or body["job"], image_set=image_set)
        assert job.status == IngestJob.Status.SUCCEEDED, f"import crashed: {job.message}"
        seen["imported"] += job.imported
        seen["errors"] += job.failed
        seen["duplicates"] += job.duplicates
        for reason in IngestError.objects.filter(job=job).values_list("reason", flat=True):
            seen[f"reason: {reason.split(':')[0][:50]}"] += 1
        assert len(job.source_paths) == len(received_parts), (job.source_paths, received)
        staging = (sandbox.media / "staging").resolve()
        expected: list[Expected] = []
        for path, (name, data) in zip(job.source_paths, received_parts):
            staged = Path(path)
            # Only the base name of a client-supplied name is kept, and it is kept inside the staging folder.
            assert staging in staged.resolve().parents, path
            assert staged.name == PurePosixPath(name.replace("\\", "/")).name, (staged.name, name)
            expected.extend(expected_outcomes(staged.name, data))
        check_every_file_accounted_for(job, image_set, expected, {Path(p).name for p in job.source_paths})
    check_nothing_written_outside_media(sandbox, before)
    check_media_holds_only_content_addressed_blobs(sandbox.media)
    check_stored_images_unchanged(stored)
    return job


def check_every_file_accounted_for(job: IngestJob, image_set: ImageSet, expected: list[Expected], staged: set[str]) -> None:
    imported = set(Image.objects.filter(image_set=image_set).values_list("original_name", flat=True))
    duplicates = set(DuplicateRecord.objects.filter(image_set=image_set).values_list("file_name", flat=True))
    errors = dict(IngestError.objects.filter(image_set=image_set).values_list("file_name", "reason"))
    for file_name, reason in errors.items():
        assert reason.strip() and "Traceback" not in reason, (file_name, reason)
        known = file_name == LABELS_FILE_NAME or any(file_name == s or file_name.startswith(f"{s}:") for s in staged)
        assert known, f"error names a file that was never sent: {file_name!r} ({reason})"
    for item in expected:
        if item.name[:500] in imported | duplicates or item.display[:500] in errors:
            continue
        if item.container is not None and item.container in errors:
            continue  # the whole archive was rejected, with its reason
        counts = [e.name for e in expected].count(item.name)
        if counts > 1 and job.skipped:
            continue  # a second identical copy under the same name is "already present", by design
        pytest.fail(f"{item.display!r} was neither imported, nor a duplicate, nor reported as an error; "
                    f"errors: {errors}; imported: {sorted(imported)}")
    assert job.imported == Image.objects.filter(image_set=image_set).count()
    assert job.failed == IngestError.objects.filter(job=job).count()


def check_nothing_written_outside_media(sandbox: Sandbox, before: dict) -> None:
    after = sandbox.snapshot()
    assert after == before, {"new": sorted(set(after) - set(before)), "changed": sorted(
        k for k in set(after) & set(before) if after[k] != before[k])}
    assert not list(sandbox.root.rglob(f"*{ESCAPE_MARKER}*"))


def check_media_holds_only_content_addressed_blobs(media: Path) -> None:
    for path in media.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue
        relative = path.relative_to(media).as_posix()
        assert not path.is_symlink(), f"symbolic link in MEDIA_ROOT: {relative}"
        sha = path.stem
        assert relative == blob_name(sha, path.suffix), f"stray file in MEDIA_ROOT: {relative}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, f"blob bytes do not match their name: {relative}"


def check_stored_images_unchanged(stored: StoredBefore) -> None:
    assert list(stored.image_set.images.order_by("id").values()) == stored.rows
    for path, sha in stored.blobs.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha, path


def fresh_set(org) -> ImageSet:
    return ImageSet.objects.create(organisation=org, name=f"fuzz-{next(_SET_NAMES)}", kind=ImageSet.Kind.GENERATED)


# --- strategies: hostile names and contents -----------------------------------------------------------------

HEADER_SAFE = st.binary(min_size=1, max_size=24).map(lambda b: b.replace(b'"', b"_").replace(b"\r", b"_").replace(b"\n", b"_"))
NAME_PREFIXES = [b"", b"", b"../", b"../../", b"../../../../../../", b"/", b"/etc/", b"C:\\", b"..\\..\\", b"sub/dir/",
                 b"./", b"&#46;&#46;&#47;", b"%2e%2e%2f"]
NAME_STEMS = [b"img", b"ISIC_0000000", b"a b", b".hidden", "été-é".encode(), b"x" * 120, b"CON", b"..", b".",
              b"", b"\xff\xfe", b"a\x00b", b"tab\there", b".DS_Store", ESCAPE_MARKER.encode()]

_structured_names = st.builds(lambda p, s, x: p + s + x, st.sampled_from(NAME_PREFIXES), st.sampled_from(NAME_STEMS),
                              st.sampled_from(IMAGE_SUFFIXES + [b".zip", b"", b".txt", b".csv"]))
_text_names = st.builds(lambda text, x: text.encode() + x,
                        st.text(st.characters(blacklist_characters='"\r\n', blacklist_categories=["Cs"]), max_size=20),
                        st.sampled_from(IMAGE_SUFFIXES))
# Names Django's parser drops (not UTF-8, or '', '.', '..') are a minority, so most bodies reach the importer.
hostile_names = st.one_of(
    _structured_names, _structured_names, _text_names, _text_names,
    st.builds(lambda raw, x: raw + x, HEADER_SAFE, st.sampled_from(IMAGE_SUFFIXES)),
    st.sampled_from([b"labels.csv", b"..", b".", b"", b"../labels.csv", b"notes.txt"]),
)

# Content specs are materialised inside the test (the real files come from a fixture).
content_specs = st.one_of(
    st.tuples(st.just("random"), st.binary(max_size=2048)),
    st.tuples(st.just("magic"), st.sampled_from(sorted(MAGIC_PREFIXES)), st.binary(max_size=512)),
    st.tuples(st.just("truncated"), st.integers(0, REAL_IMAGE_COUNT - 1), st.floats(0.0, 0.999)),
    # Flips land in the first 512 bytes (headers, where decoders branch) or anywhere in the file.
    st.tuples(st.just("flipped"), st.integers(0, REAL_IMAGE_COUNT - 1),
              st.lists(st.tuples(st.one_of(st.integers(0, 511), st.integers(0, 2**22)), st.integers(0, 255)),
                       min_size=1, max_size=8)),
    st.tuples(st.just("real"), st.integers(0, REAL_IMAGE_COUNT - 1)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("labels"), st.binary(max_size=300)),
)


def materialise(spec: tuple, real_images: list[bytes]) -> bytes:
    kind = spec[0]
    if kind == "random":
        return spec[1]
    if kind == "magic":
        return MAGIC_PREFIXES[spec[1]] + spec[2]
    if kind == "truncated":
        data = real_images[spec[1]]
        return data[: int(len(data) * spec[2])]
    if kind == "flipped":
        data = bytearray(real_images[spec[1]])
        for position, value in spec[2]:
            data[position % len(data)] = value
        return bytes(data)
    if kind == "real":
        return real_images[spec[1]]
    if kind == "labels":
        return b"file,diagnosis,fitzpatrick,acquisition\n" + spec[1]
    return b""


# --- the properties -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["rest", "web"])
def test_hostile_names_and_contents_never_crash_and_are_all_reported(
        channel, org, clients, sandbox, stored_before, real_images, django_capture_on_commit_callbacks):
    before, seen = sandbox.snapshot(), Counter()

    @FUZZ
    @given(parts=st.lists(st.tuples(hostile_names, content_specs), min_size=1, max_size=4))
    # Found by fuzzing: this 16-bit TIFF's corrupt next-frame pointer made Pillow raise TypeError from n_frames,
    # which escaped the importer and failed the whole batch.
    @example(parts=[(b"frames.tif", ("flipped", TIFF_16BIT, [(121, 59), (207, 65)])), (b"ok.jpg", ("real", 0))])
    def upload(parts):
        files = [(name, materialise(spec, real_images)) for name, spec in parts]
        image_set = fresh_set(org)
        response = post_files(channel, clients, image_set, files, django_capture_on_commit_callbacks)
        check_upload(response, files, image_set, sandbox, before, stored_before, seen)

    upload()
    # The fuzzer must not go vacuous: most bodies reach the importer, some images import, bad ones are named.
    assert seen["HTTP 202"] >= 20 and seen["imported"] >= 3, seen
    assert seen["reason: corrupt or truncated image"] and seen["reason: not an image file (Pillow cannot identify its form"], seen


@pytest.mark.parametrize("channel", ["rest", "web"])
def test_crafted_zips_are_read_safely_and_every_hostile_entry_is_named(
        channel, org, clients, sandbox, stored_before, real_images, django_capture_on_commit_callbacks):
    before, seen = sandbox.snapshot(), Counter()

    @FUZZ
    @given(entries=st.lists(ENTRY_KINDS, min_size=1, max_size=6), mutation=ARCHIVE_MUTATIONS,
           zip_name=st.sampled_from([b"batch.zip", b"../../batch.zip", b"/abs/batch.ZIP", b"renamed.png"]),
           beside=st.booleans())
    # Always tried: deflated data labelled LZMA or bzip2 (their decompressors raise their own exception types),
    # a declared size of almost 4 GiB, and one entry of every hostile kind in one intact archive.
    @example(entries=[("image", 0, "a.png")], mutation=("method", 0, 14), zip_name=b"batch.zip", beside=True)
    @example(entries=[("image", 3, "a.png")], mutation=("method", 0, 12), zip_name=b"batch.zip", beside=False)
    @example(entries=[("image", 1, "a.png"), ("image", 2, "b.png")], mutation=("declared_size", 1, 0xFFFFFFFE),
             zip_name=b"batch.zip", beside=False)
    @example(entries=[("traversal", 3, "/"), ("absolute", "sandbox"), ("symlink", "sandbox"), ("ratio_bomb", 2),
                      ("nested", "inner.zip"), ("encrypted", 4), ("non_utf8", b"\xff\xfe", False),
                      ("duplicate", 2, True), ("image", 5, "images/b.jpg")],
             mutation=("none",), zip_name=b"../../batch.zip", beside=True)
    def upload(entries, mutation, zip_name, beside):
        archive, crafted = build_zip(entries, sandbox.root, real_images)
        archive = mutate_archive(archive, mutation)
        files = [(zip_name, archive)] + ([(b"beside.jpg", real_images[5])] if beside else [])
        image_set = fresh_set(org)
        response = post_files(channel, clients, image_set, files, django_capture_on_commit_callbacks)
        job = check_upload(response, files, image_set, sandbox, before, stored_before, seen)
        seen[f"mutation: {mutation[0]}"] += 1

        if mutation[0] != "none" or job is None:
            return
        # An intact archive: each hostile entry is refused for its own reason, and none became an image.
        staged = Path(job.source_paths[0]).name
        errors = dict(image_set.ingest_errors.values_list("file_name", "reason"))
        if staged in errors:
            # Only an entry flagged UTF-8 whose name is not UTF-8 makes zipfile refuse to list the archive at all.
            assert any(spec[0] == "non_utf8" and spec[2] for spec in entries), errors
            assert "not a readable zip archive" in errors[staged]
            return
        imported = set(image_set.images.values_list("original_name", flat=True))
        for entry in crafted:
            if entry.kind in EXPECTED_REASON:
                reason = errors.get(f"{staged}:{entry.name}", "")
                assert EXPECTED_REASON[entry.kind] in reason, (entry, errors)
                assert entry.name not in imported
                seen[f"refused as expected: {entry.kind}"] += 1
        if beside:  # the good file next to the archive is imported (or is a duplicate of an entry)
            assert "beside.jpg" in imported or image_set.duplicate_records.filter(file_name="beside.jpg").exists()

    upload()
    assert all(seen[f"refused as expected: {kind}"] for kind in EXPECTED_REASON), seen
    assert seen["reason: not a readable zip archive"] and seen["reason: corrupt archive entry"], seen
