"""Side channels: can anything the reader's browser receives, other than the pixels it shows, tell real from synthetic?

Equal length is not equal information. A compressed image padded to one length still gives its class away: the
padding strips off in one line and the payload's size follows the content (a user separated a 40-case study this
way, synthetic 23–30 KB against real 31–61 KB). So each case is read here the way a reader's browser reads it —
log in, open the reading page, fetch the image it points at, answer, next — and a classifier is trained on every
number the browser could compute about a case besides looking at it. With the truth known, a cross-validated AUC
above the label-permutation null means something leaks.

The compressed size of the body (re-compressing it with zlib) is the one attack that also measures the pixels: the
'generated' images here are blurry 64-px PNGs, and re-compressing any faithful encoding of them says so, just as
the reader's eyes can (measured on the uncompressed serving: zlib size alone separates them with AUC 0.89).
Blinding promises nothing beyond the pixels, so that attack is tested where the pixels are equal: a generated PNG
that shows exactly the pixels of a real case must be served as exactly the same bytes.

Measured against the JPEG serving this replaced (blind-v1): classifier AUC 0.949 against a null 99 % quantile of
0.735; stripped payload real 3,209–4,836 bytes, synthetic 3,019–3,178 (AUC 1.000); 15 of 16 look-alike pairs
served as different bytes. The timing test passed there too (it had nothing to find); rendering on request, with
the cache wiped, measured AUC 0.12 and 0.0 in two runs.
"""
from __future__ import annotations

import base64
import io
import random
import re
import statistics
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import PngImagePlugin
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import reader_study.models
from auditor.models import ImageSet
from reader_study.models import Showing
from reader_study.services import invite_readers, open_study

from .helpers import ANSWER, build_sets, current_token, ingest_files, make_reader, make_study, web_client

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CASES_PER_CLASS = 16
PERMUTATIONS = 1000
# The reading order is random by design, and where ids differ between runs (PostgreSQL) it is redrawn on each run:
# a clean serving then fails 1 run in 1,000 at this bar by chance alone. The JPEG serving's leak sat far above the
# 99 % quantile already (AUC 0.949 against 0.735); the uncompressed serving scores 0.453 on SQLite, where every run
# is the same.
NULL_QUANTILE = 0.999


@dataclass
class Observed:
    """One case as a reader's browser met it."""

    synthetic: bool
    position: int
    url: str
    page: bytes
    body: bytes
    headers: dict[str, str]
    cookies: int
    seconds: float
    original_name: str = field(repr=False)


def _read_every_case(study, reader) -> list[Observed]:
    """Read the study as a reader does: reading page → its image → answer → next page, until none is left."""
    client = web_client(reader)
    seen = []
    for position in range(study.cases.count() * 2):
        page = client.get(f"/studies/{study.pk}/read/")
        html = page.content.decode()
        if 'name="token"' not in html:
            break
        token = current_token(html)
        url = re.search(r'<img src="([^"]+)"', html).group(1)
        started = time.perf_counter()
        image = client.get(url)
        seconds = time.perf_counter() - started
        assert image.status_code == 200
        showing = Showing.objects.select_related("case__image").get(token=token)
        seen.append(Observed(showing.case.truth_synthetic, position, url, page.content, image.content,
                             dict(image.items()), len(image.cookies), seconds, showing.case.image.original_name))
        assert client.post(f"/studies/{study.pk}/read/", {**ANSWER, "token": token}).status_code == 302
    assert len(seen) == study.cases.count()
    return seen


def _open_and_read(organisation, real, synthetic, name: str, monkeypatch):
    """Design, invite one reader, open and read. The showing tokens come from a seeded generator here (they are
    random by design; seeded, the classifier below sees the same features on every run of this test)."""
    study = make_study(organisation, real, synthetic, name=name, image_size=128)
    reader = make_reader(f"reader-{name}", organisation)
    rng = random.Random(name)
    with monkeypatch.context() as patch:
        patch.setattr(reader_study.models.secrets, "token_urlsafe",
                      lambda n: base64.urlsafe_b64encode(rng.randbytes(n)).rstrip(b"=").decode())
        invite_readers(study, [reader])
    open_study(study)
    return reader, _read_every_case(study, reader)


@pytest.fixture
def blurry_study(org, isic_dir, tmp_path, monkeypatch):
    """Real ISIC JPEGs (512×384, EXIF, ICC) against blurry 64-px generator PNGs with text chunks: the user's case.
    Returns the real set, the reader and what the reader's browser received."""
    real, synthetic = build_sets(org, isic_dir, tmp_path, CASES_PER_CLASS, CASES_PER_CLASS)
    reader, seen = _open_and_read(org, real, synthetic, "blurry", monkeypatch)
    return real, reader, seen


def cross_validated_auc(features: np.ndarray, truth: np.ndarray) -> float:
    """Logistic regression, 5 stratified folds (fixed), AUC of the out-of-fold scores."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))
    scores = cross_val_predict(model, features, truth, cv=folds, method="decision_function")
    return float(roc_auc_score(truth, scores))


def permutation_null(features: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The same cross-validated AUC with shuffled labels: cross-validation under the null sits below 0.5, so a
    leak is an AUC above this distribution, not above 0.5."""
    rng = np.random.default_rng(1)
    return np.array([cross_validated_auc(features, rng.permutation(truth)) for _ in range(PERMUTATIONS)])


def single_feature_separation(values, truth) -> float:
    """AUC of one feature used as a score, in whichever direction separates better (0.5 = none, 1 = perfect)."""
    auc = roc_auc_score(truth, np.asarray(values, dtype=float))
    return float(max(auc, 1 - auc))


def _categorical(values: list) -> list[int]:
    order = sorted({repr(v) for v in values})
    return [order.index(repr(v)) for v in values]


def browser_features(seen: list[Observed]) -> tuple[np.ndarray, list[str]]:
    """Every number a browser (or its devtools) has about a case, the decoded pixels aside."""
    columns = {
        "byte length": [len(o.body) for o in seen],
        "length without trailing zeros": [len(o.body.rstrip(b"\0")) for o in seen],
        "position in the reader's order": [o.position for o in seen],
        "image URL length": [len(o.url) for o in seen],
        "image URL sort rank": _categorical([o.url for o in seen]),
        "reading page length": [len(o.page) for o in seen],
        "cookies set": [o.cookies for o in seen],
    }
    for name in sorted({name for o in seen for name in o.headers}):
        columns[f"header {name}"] = _categorical([o.headers.get(name) for o in seen])
    return np.array(list(columns.values()), dtype=float).T, list(columns)


def _leak_report(features: np.ndarray, names: list[str], truth: np.ndarray) -> str:
    separating = {name: round(single_feature_separation(features[:, i], truth), 3) for i, name in enumerate(names)}
    return ", ".join(f"{name}: {auc}" for name, auc in sorted(separating.items(), key=lambda kv: -kv[1]))


def test_a_classifier_on_everything_but_the_pixels_is_at_chance(blurry_study):
    _, _, seen = blurry_study
    truth = np.array([o.synthetic for o in seen], dtype=int)
    assert truth.sum() == CASES_PER_CLASS == len(truth) - truth.sum()
    features, names = browser_features(seen)
    # The pipeline can find a leak when there is one: the truth itself as a feature is found perfectly.
    assert cross_validated_auc(truth[:, None].astype(float), truth) == 1.0

    auc = cross_validated_auc(features, truth)
    null = permutation_null(features, truth)
    assert auc <= np.quantile(null, NULL_QUANTILE), (
        f"cross-validated AUC {auc:.3f} > {NULL_QUANTILE:.0%} quantile of the permutation null "
        f"{np.quantile(null, NULL_QUANTILE):.3f}; "
        f"single features: {_leak_report(features, names, truth)}"
    )


def test_nothing_strips_off_and_the_stripped_size_does_not_separate_the_classes(blurry_study):
    """The user's attack: strip the trailing zeros and look at what is left."""
    _, _, seen = blurry_study
    truth = [o.synthetic for o in seen]
    stripped = [len(o.body.rstrip(b"\0")) for o in seen]
    by_class = {kind: [n for n, t in zip(stripped, truth) if t == kind] for kind in (False, True)}
    measured = (f"AUC {single_feature_separation(stripped, truth):.3f}; stripped bytes real "
                f"{min(by_class[False])}–{max(by_class[False])}, synthetic {min(by_class[True])}–{max(by_class[True])}")
    assert single_feature_separation(stripped, truth) == 0.5, measured
    assert len(set(stripped)) == 1 and stripped[0] == len(seen[0].body), measured


def _look_alike_png(body: bytes, name: str) -> bytes:
    """A 'generated' PNG that shows exactly the pixels a reader saw for a real case, with generator text chunks."""
    with PILImage.open(io.BytesIO(body)) as image:
        pixels = image.convert("RGB")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"diffusion twin of {name}")
    info.add_text("Software", "stylegan3")
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG", pnginfo=info, compress_level=9)
    return buffer.getvalue()


def test_a_case_that_looks_the_same_is_the_same_bytes_whatever_its_class(org, tmp_path, blurry_study, monkeypatch):
    """Re-compressing the body (the size attack) learns only what the pixels show: a generated PNG carrying exactly
    the pixels of a real case — other format, size, metadata and class — is served as the very same bytes."""
    real, _, seen = blurry_study
    twins = ImageSet.objects.create(organisation=org, name="twins", kind=ImageSet.Kind.GENERATED,
                                    generator_name="diffusion", generator_version="1")
    twin_of = {f"twin_{i}.png": o.original_name for i, o in enumerate(o for o in seen if not o.synthetic)}
    bodies = {o.original_name: o.body for o in seen}
    ingest_files(twins, {name: _look_alike_png(bodies[of], of) for name, of in twin_of.items()}, tmp_path / "twins")
    for image in twins.images.all():
        image.diagnosis = real.images.get(original_name=twin_of[image.original_name]).diagnosis
        image.save(update_fields=["diagnosis"])
    twins.refresh_manifest()

    _, paired = _open_and_read(org, real, twins, "twins", monkeypatch)
    by_original: dict[str, dict[bool, Observed]] = {}
    for o in paired:
        by_original.setdefault(twin_of.get(o.original_name, o.original_name), {})[o.synthetic] = o
    assert len(by_original) == CASES_PER_CLASS and all(len(p) == 2 for p in by_original.values())
    pairs = [(p[False], p[True]) for p in by_original.values()]
    differing = [abs(len(r.body.rstrip(b"\0")) - len(s.body.rstrip(b"\0"))) for r, s in pairs if r.body != s.body]
    assert not differing, (f"{len(differing)} of {len(pairs)} look-alike pairs are served as different bytes "
                           f"(stripped lengths differ by up to {max(differing)} bytes)")
    assert all(len(zlib.compress(r.body, 9)) == len(zlib.compress(s.body, 9)) for r, s in pairs)

    # And so a classifier on every feature, the re-compressed size included, is at chance on this study.
    truth = np.array([o.synthetic for o in paired], dtype=int)
    features, names = browser_features(paired)
    recompressed = np.array([[len(zlib.compress(o.body, 9))] for o in paired], dtype=float)
    features = np.hstack([features, recompressed])
    auc = cross_validated_auc(features, truth)
    assert auc <= np.quantile(permutation_null(features, truth), NULL_QUANTILE), \
        _leak_report(features, names + ["zlib size of the body"], truth)


def _timing_p_value(seconds: list[float], truth: np.ndarray, rng) -> tuple[float, float]:
    """Rank AUC of response times against the truth and its two-sided permutation p-value (10,000 shuffles)."""
    ranks = rankdata(seconds)
    positives, negatives = truth.sum(), len(truth) - truth.sum()

    def auc(labels: np.ndarray) -> np.ndarray:
        return (labels @ ranks - positives * (positives + 1) / 2) / (positives * negatives)

    observed = float(auc(truth))
    null = auc(rng.permuted(np.tile(truth, (10_000, 1)), axis=1))
    return observed, float((1 + (abs(null - 0.5) >= abs(observed - 0.5)).sum()) / (1 + len(null)))


def test_response_time_does_not_separate_the_classes(blurry_study):
    """Rendering is done when the study opens; serving reads one cached file of one length. Checked on the first
    response of each case (as the reader met it) and on the median of four more, fetched in shuffled rounds.
    Timing on a shared machine is noisy, so the bar is p < 0.001; rendering on request measured AUC 0.0–0.12."""
    _, reader, seen = blurry_study
    truth = np.array([o.synthetic for o in seen], dtype=int)
    rng = np.random.default_rng(2)
    client = web_client(reader)
    again: dict[str, list[float]] = {o.url: [] for o in seen}
    for _ in range(4):
        for index in rng.permutation(len(seen)):
            started = time.perf_counter()
            assert client.get(seen[index].url).status_code == 200
            again[seen[index].url].append(time.perf_counter() - started)
    for what, seconds in (("first", [o.seconds for o in seen]),
                          ("median", [statistics.median(again[o.url]) for o in seen])):
        auc, p_value = _timing_p_value(seconds, truth, rng)
        assert p_value > 0.001, f"{what} response time separates the classes (AUC {auc:.3f}, p = {p_value:.4f})"
