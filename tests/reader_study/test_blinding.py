"""Attempts to break the blinding: compare everything a reader receives for real and for synthetic cases.

The image sets are built to differ the way real clinics' and generators' files do: real cases are 512×384
JPEGs with EXIF camera tags and an ICC profile, synthetic ones 64×64 PNGs with generator text chunks.
A classifier on all of it, and the compressed-size attack, are in test_blinding_side_channels.py.
"""
from __future__ import annotations

import io
import re
import struct

import pytest
from PIL import Image as PILImage

from reader_study import blinding
from reader_study.models import Case, Showing
from reader_study.services import invite_readers, open_study
from tests.auditor.conftest import api_client_for

from .helpers import make_reader, make_study, web_client

pytestmark = pytest.mark.django_db
LEAKS = [b"Exif", b"DermLite", b"ICC_PROFILE", b"stylegan", b"parameters", b"dcgan", b"real_", b"fake_", b"isic", b"gan"]


@pytest.fixture
def opened(org, study):
    readers = [make_reader(f"reader-{c}", org) for c in "abcdef"]  # same-length names: same-length pages
    invite_readers(study, readers)
    open_study(study)
    return study, readers


def _fetch_images(reader) -> dict[bool, list]:
    api = api_client_for(reader)
    by_truth = {True: [], False: []}
    for showing in Showing.objects.filter(assignment__reader=reader).select_related("case"):
        response = api.get(f"/api/reader/cases/{showing.token}/image/")
        assert response.status_code == 200
        by_truth[showing.case.truth_synthetic].append(response)
    return by_truth


def _png_chunks(data: bytes) -> list[tuple[bytes, int]]:
    assert data.startswith(blinding.PNG_SIGNATURE)
    chunks, offset = [], len(blinding.PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        chunks.append((data[offset + 4:offset + 8], length))
        offset += 12 + length
    assert offset == len(data)
    return chunks


def test_image_bytes_headers_and_sizes_do_not_depend_on_truth(opened):
    study, readers = opened
    by_truth = _fetch_images(readers[0])
    responses = by_truth[True] + by_truth[False]
    assert by_truth[True] and by_truth[False]
    headers = {tuple(sorted(r.items())) for r in responses}
    assert len(headers) == 1, headers  # identical header names and values, Content-Length included
    assert dict(responses[0].items())["Content-Type"] == "image/png"
    assert "no-transform" in responses[0]["Cache-Control"]
    assert "Content-Disposition" not in responses[0] and "Last-Modified" not in responses[0] and "ETag" not in responses[0]
    assert len({len(r.content) for r in responses}) == 1 == len({r["Content-Length"] for r in responses})
    layouts = {tuple(_png_chunks(r.content)) for r in responses}
    assert layouts == {((b"IHDR", 13), (b"IDAT", len(responses[0].content) - 57), (b"IEND", 0))}, layouts
    for response in responses:
        data = response.content
        for leak in LEAKS:
            assert leak not in data, leak
        with PILImage.open(io.BytesIO(data)) as image:
            assert (image.format, image.size, image.mode) == ("PNG", (128, 128), "RGB")
            assert image.info == {} and not image.getexif()
            image.load()
            # The bytes are the pixels' canonical encoding: nothing in them that the pixels do not determine.
            assert blinding.encode_pixels(image) == data


def test_nothing_is_padded_every_rendering_has_the_study_length(opened):
    study, readers = opened
    length = blinding.encoded_length(128)
    assert study.padded_image_bytes == length == 49_348  # 8 + 25 + 12 + (2 + 128 × 385 + 5 + 4) + 12
    for case in Case.objects.filter(study=study):
        served = blinding.blinded_image_bytes(case, study)
        assert served == blinding.derivative_path(case.derivative_key).read_bytes()
        assert len(served) == case.derivative_bytes == length and served.endswith(b"IEND\xaeB`\x82")


def test_a_rendering_of_another_length_is_an_error_not_padding(org, study, monkeypatch):
    rendered = blinding.render_blinded
    monkeypatch.setattr(blinding, "render_blinded", lambda source, size: rendered(source, size) + b"\0")
    with pytest.raises(blinding.BlindingError):
        open_study(study)
    study.refresh_from_db()
    assert study.status == study.Status.DRAFT


def test_a_damaged_cache_file_is_rendered_again_not_served(opened, caplog):
    study, readers = opened
    case = Case.objects.filter(study=study).first()
    path = blinding.derivative_path(case.derivative_key)
    good = path.read_bytes()
    path.write_bytes(good[:-100])
    assert blinding.blinded_image_bytes(case, study) == good == path.read_bytes()
    assert "cache miss" in caplog.text


def _normalise_page(html: str, token: str, username: str) -> str:
    html = html.replace(token, "TOKEN").replace(username, "USER")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken" value="CSRF"', html)


def _first_case_pages(study, readers):
    pages = {}
    for reader in readers:
        response = web_client(reader).get(f"/studies/{study.pk}/read/")
        showing = Showing.objects.get(token=re.search(r'name="token" value="([^"]+)"', response.content.decode()).group(1))
        pages.setdefault(showing.case.truth_synthetic, (response, showing, reader))
    assert set(pages) == {True, False}, "with six readers both kinds come first for someone"
    return pages


def test_case_pages_differ_only_in_the_opaque_token(opened):
    study, readers = opened
    pages = _first_case_pages(study, readers)
    (real, real_showing, real_reader), (fake, fake_showing, fake_reader) = pages[False], pages[True]
    assert _normalise_page(real.content.decode(), real_showing.token, real_reader.username) == \
        _normalise_page(fake.content.decode(), fake_showing.token, fake_reader.username)
    assert len(real.content) == len(fake.content)

    def header_view(response):  # Expires carries the clock, not the case
        return {k: v for k, v in response.items() if k != "Expires"}

    assert header_view(real) == header_view(fake)
    for leak in ("isic", "gan", "real_0", "fake_0", real_showing.case.image_sha256[:12]):
        assert f'"{leak}' not in real.content.decode() and f"/{leak}" not in real.content.decode()


def test_next_case_json_differs_only_in_the_token(opened):
    study, readers = opened
    clients = [api_client_for(reader) for reader in readers]
    assignments = [api.get("/api/reader/assignments/").json()["results"][0]["id"] for api in clients]
    # Compare readers at the same position: the first position at which some reader sees a synthetic case and
    # another a real one (every reader's first case can happen to have the same truth).
    for _ in range(8):
        bodies, tokens = {}, []
        for api, assignment in zip(clients, assignments):
            response = api.get(f"/api/reader/assignments/{assignment}/next/")
            token = response.json()["case"]["token"]
            truth = Showing.objects.get(token=token).case.truth_synthetic
            text = response.content.decode().replace(token, "TOKEN")
            bodies.setdefault(truth, (text, sorted(response.items())))
            tokens.append(token)
        if len(bodies) == 2:
            break
        for api, token in zip(clients, tokens):
            answered = api.post(f"/api/reader/cases/{token}/answer/", {"call": "real", "confidence": 3, "quality": 4},
                                format="json")
            assert answered.status_code in (200, 201), answered.content
    assert set(bodies) == {True, False}
    assert bodies[True] == bodies[False]
    assert "truth" not in bodies[True][0] and "image_set" not in bodies[True][0]


def test_tokens_are_random_unique_and_unrelated_to_case_image_or_order(opened):
    study, readers = opened
    showings = list(Showing.objects.filter(assignment__study=study).select_related("case"))
    tokens = [s.token for s in showings]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", t) for t in tokens)
    for showing in showings:
        assert showing.case.image_sha256[:8] not in showing.token and str(showing.case.pk) != showing.token
    # The same case has a different token for every reader and for its repeat.
    per_case = {}
    for showing in showings:
        per_case.setdefault(showing.case_id, set()).add(showing.token)
    assert all(len(t) == len(readers) for t in per_case.values())
    # Sorting a reader's tokens does not reproduce their order (8! orders; a leak would do it every time).
    mine = [s for s in showings if s.assignment.reader_id == readers[0].pk]
    by_position = [s.token for s in sorted(mine, key=lambda s: s.position)]
    assert sorted(by_position) != by_position or sorted(by_position, reverse=True) != by_position


def test_repeated_case_gets_its_own_token(org, image_sets):
    real, synthetic = image_sets
    study = make_study(org, real, synthetic, name="repeats", repeat_fraction=0.25)
    reader = make_reader("reader-r", org)
    invite_readers(study, [reader])
    repeats = Showing.objects.filter(assignment__reader=reader, number=2)
    assert repeats.count() == 2
    for repeat in repeats:
        first = Showing.objects.get(assignment=repeat.assignment, case=repeat.case, number=1)
        assert first.token != repeat.token


def test_serving_does_no_image_work_so_first_responses_take_the_same_time(opened, monkeypatch):
    """Rendering happens when the study opens; serving only reads a cached file of a fixed length. If serving
    decoded or re-encoded, a 512×384 JPEG would take longer the first time than a 64×64 PNG."""
    study, readers = opened

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded or rendered while a reader waited")

    monkeypatch.setattr(blinding.PILImage, "open", refuse)
    monkeypatch.setattr(blinding, "render_blinded", refuse)
    monkeypatch.setattr(blinding, "encode_pixels", refuse)
    _fetch_images(readers[1])


def test_renderings_are_cached_by_content(org, image_sets, study):
    real, synthetic = image_sets
    other = make_study(org, real, synthetic, name="same images")
    open_study(study)
    open_study(other)
    files = list((blinding.derivative_path("00").parent.parent).rglob("*.png"))
    assert len(files) == study.cases.count()  # one rendering per distinct content, shared by both studies
    keys = {c.derivative_key for c in Case.objects.all()}
    assert keys == {blinding.derivative_key(c.image.sha256, 128) for c in Case.objects.select_related("image")}
