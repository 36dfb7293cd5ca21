"""Hostile zip archives for tests/auditor/test_fuzz_upload.py: hypothesis strategies for entry kinds and archive
mutations, a builder, and byte-level patches of the zip headers (names, flags, compression method, declared sizes)
that zipfile itself would never write."""
from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from auditor.ingestion.rules import LABELS_FILE_NAME

ESCAPE_MARKER = "escaped-by-fuzz"  # every path-traversal target carries it; no file by that name may appear


ENTRY_KINDS = st.one_of(
    st.tuples(st.just("image"), st.integers(0, 5), st.sampled_from(["a.png", "images/b.jpg", "deep/er/c.jpeg", "d.PNG"])),
    st.tuples(st.just("traversal"), st.integers(1, 6), st.sampled_from(["/", "\\"])),
    st.tuples(st.just("absolute"), st.sampled_from(["sandbox", "C:/", "C:\\", "\\\\server\\share\\"])),
    st.tuples(st.just("symlink"), st.sampled_from(["../../../../etc/passwd", "/etc/passwd", "sandbox"])),
    st.tuples(st.just("ratio_bomb"), st.integers(2, 4)),
    st.tuples(st.just("nested"), st.sampled_from(["inner.zip", "inner.png", "inner.tar.gz"])),
    st.tuples(st.just("duplicate"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("non_utf8"), st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\\" not in b),
              st.booleans()),
    st.tuples(st.just("encrypted"), st.integers(0, 5)),
    st.tuples(st.just("random"), st.binary(max_size=1024), st.sampled_from(["r.png", "r.jpg", "r.webp", "r.tif"])),
    st.tuples(st.just("labels"), st.binary(max_size=200)),
    st.tuples(st.just("directory")),
    st.tuples(st.just("side_file")),
)
_BROKEN_ARCHIVE = st.one_of(
    st.tuples(st.just("declared_size"), st.integers(0, 7), st.integers(0, 0xFFFFFFFE)),
    st.tuples(st.just("method"), st.integers(0, 7), st.sampled_from([1, 6, 9, 12, 14, 93, 95, 98, 99])),
    st.tuples(st.just("central_directory_bytes"), st.lists(st.tuples(st.floats(0.0, 0.999), st.integers(0, 255)),
                                                           min_size=1, max_size=6)),
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999)),
    st.tuples(st.just("entry_count"), st.integers(0, 0xFFFF)),
)
# About half the archives are left intact, so that each hostile entry's own reason can be checked.
ARCHIVE_MUTATIONS = st.tuples(st.booleans(), _BROKEN_ARCHIVE).map(lambda pair: ("none",) if pair[0] else pair[1])
# What the importer must say about each hostile entry when the archive itself is intact.
EXPECTED_REASON = {
    "traversal": "unsafe path",
    "absolute": "unsafe path",
    "symlink": "symbolic link",
    "ratio_bomb": "zip-bomb guard",
    "nested": "nested archive",
    "encrypted": "encrypted",
}


@dataclass
class CraftedEntry:
    kind: str
    name: str  # as zipfile reads it back


def _placeholder(length: int, index: int) -> str:
    return f"N{index:03d}".ljust(length, "Q")[:length] if length >= 4 else "Q" * length


def build_zip(entries: list[tuple], sandbox_root: Path, real_images: list[bytes]) -> tuple[bytes, list[CraftedEntry]]:
    """A zip of the given entry kinds (see ENTRY_KINDS); names of non-UTF-8 entries and encryption flags are patched in
    afterwards, as zipfile cannot write them."""
    buffer = io.BytesIO()
    crafted: list[CraftedEntry] = []
    renames: list[tuple[bytes, bytes, bool]] = []  # placeholder, raw name, set the UTF-8 flag
    encrypt: list[bytes] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is the point of one entry kind
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for index, spec in enumerate(entries):
                kind = spec[0]
                if kind == "image":
                    name, data = spec[2], real_images[spec[1]]
                elif kind == "traversal":
                    name, data = spec[2].join([".."] * spec[1] + [f"{ESCAPE_MARKER}-{index}.png"]), real_images[0]
                elif kind == "absolute":
                    prefix = f"{sandbox_root}/" if spec[1] == "sandbox" else spec[1]
                    name, data = f"{prefix}{ESCAPE_MARKER}-abs-{index}.png", real_images[1]
                elif kind == "symlink":
                    target = str(sandbox_root / f"{ESCAPE_MARKER}-link") if spec[1] == "sandbox" else spec[1]
                    info = zipfile.ZipInfo(f"link-{index}.png")
                    info.create_system = 3
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(info, target)
                    crafted.append(CraftedEntry(kind, info.filename))
                    continue
                elif kind == "ratio_bomb":
                    name, data = f"flat-{index}.bmp", b"\0" * (spec[1] * 1024 * 1024)
                elif kind == "nested":
                    inner = io.BytesIO()
                    with zipfile.ZipFile(inner, "w") as nested:
                        nested.writestr("x.png", real_images[2])
                    name, data = f"{index}-{spec[1]}", inner.getvalue()
                elif kind == "duplicate":
                    archive.writestr("twice.jpg", real_images[spec[1]])
                    crafted.append(CraftedEntry(kind, "twice.jpg"))
                    name, data = "twice.jpg", real_images[spec[1] if spec[2] else (spec[1] + 1) % 6]
                elif kind == "non_utf8":
                    raw = spec[1] + b".png"
                    placeholder = _placeholder(len(raw), index)
                    renames.append((placeholder.encode(), raw, spec[2]))
                    name, data = placeholder, real_images[3]
                elif kind == "encrypted":
                    name, data = f"secret-{index}.png", real_images[spec[1]]
                    encrypt.append(name.encode())
                elif kind == "random":
                    name, data = f"{index}-{spec[2]}", spec[1]
                elif kind == "labels":
                    name, data = LABELS_FILE_NAME, b"file,diagnosis,fitzpatrick\n" + spec[1]
                elif kind == "directory":
                    name, data = f"folder-{index}/", b""
                else:
                    name, data = f"readme-{index}.txt", b"not an image"
                archive.writestr(name, data)
                crafted.append(CraftedEntry(kind, name))
    data = buffer.getvalue()
    for placeholder, raw, utf8_flag in renames:
        data = patch_entry(data, placeholder, new_name=raw, set_flags=0x800 if utf8_flag else 0)
    for name in encrypt:
        data = patch_entry(data, name, set_flags=0x1)
    # Names as zipfile reads them back (non-UTF-8 bytes without the flag decode as cp437).
    try:
        read_back = [i.filename for i in zipfile.ZipFile(io.BytesIO(data)).infolist()]
        for entry, actual in zip(crafted, read_back):
            entry.name = actual
    except Exception:
        pass
    return data, crafted


def central_directory(data: bytes) -> list[int]:
    """Offsets of the central-directory records."""
    end = data.rfind(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HII", data, end + 10)
    records = []
    for _ in range(count):
        if data[offset:offset + 4] != b"PK\x01\x02":
            break
        records.append(offset)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        offset += 46 + name_len + extra_len + comment_len
    return records


def patch_entry(data: bytes, name: bytes, *, new_name: bytes | None = None, set_flags: int = 0, method: int | None = None,
                declared_size: int | None = None) -> bytes:
    """Rewrite one entry's name, flags, compression method or declared size in both its headers."""
    out = bytearray(data)
    for central in central_directory(data):
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46:central + 46 + name_len] != name:
            continue
        local = struct.unpack_from("<I", data, central + 42)[0]
        for header, flags_at, method_at, size_at, name_at in ((central, 8, 10, 24, 46), (local, 6, 8, 22, 30)):
            flags = struct.unpack_from("<H", out, header + flags_at)[0]
            struct.pack_into("<H", out, header + flags_at, flags | set_flags)
            if method is not None:
                struct.pack_into("<H", out, header + method_at, method)
            if declared_size is not None:
                struct.pack_into("<I", out, header + size_at, declared_size)
            if new_name is not None:
                assert len(new_name) == len(name)
                out[header + name_at:header + name_at + len(name)] = new_name
        break
    return bytes(out)


def mutate_archive(data: bytes, mutation: tuple) -> bytes:
    kind = mutation[0]
    if kind == "none":
        return data
    if kind == "truncate":
        return data[: int(len(data) * mutation[1])]
    end = data.rfind(b"PK\x05\x06")
    records = central_directory(data)
    if kind == "entry_count":
        out = bytearray(data)
        struct.pack_into("<HH", out, end + 8, mutation[1], mutation[1])
        return bytes(out)
    if kind == "central_directory_bytes":
        start = records[0] if records else end
        out = bytearray(data)
        for fraction, value in mutation[1]:
            out[start + int((len(data) - start) * fraction)] = value
        return bytes(out)
    if not records:
        return data
    central = records[mutation[1] % len(records)]
    name_len = struct.unpack_from("<H", data, central + 28)[0]
    name = data[central + 46:central + 46 + name_len]
    if kind == "declared_size":
        return patch_entry(data, name, declared_size=mutation[2])
    return patch_entry(data, name, method=mutation[2])
