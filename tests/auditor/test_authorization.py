"""Authorization matrix, generated from the URL configuration.

Every named URL of the API and web pages must have an entry in MATRIX (a new endpoint without one fails
`test_every_endpoint_has_an_entry`). Each entry is requested by every role, on an object of the caller's own
organisation and on one of another organisation, and the status code is asserted.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from auditor.models import Audit, GeneratorRun, Image, ImageSet, Report, IngestError, IngestJob, Organisation, Role

from tests.auditor.conftest import api_client_for, image_bytes, make_user
from tests.web.worlds import illustrated_report

pytestmark = pytest.mark.django_db

ROLES = ["quality", "admin", "developer", "reader", "anonymous"]
# Names that are not ours to police here: Django admin (staff only), auth pages, the API root index.
EXCLUDED = {"login", "logout", "api-root"}
EXCLUDED_NAMESPACES = {"admin"}


def _status(quality, admin, developer, reader, anonymous) -> dict[str, int]:
    return dict(zip(ROLES, [quality, admin, developer, reader, anonymous]))


READ = _status(200, 200, 200, 403, 401)
WRITE_CREATED = _status(201, 201, 403, 403, 401)
HIDDEN = _status(404, 404, 404, 403, 401)  # another organisation's object: invisible, not forbidden
HIDDEN_WRITE = _status(404, 404, 403, 403, 401)  # roles that can never write are refused before any lookup
WEB_READ = _status(200, 200, 200, 403, 302)
WEB_HIDDEN = _status(404, 404, 404, 403, 302)

# name -> list of (method, url(objects), payload(objects) | None, expected own-org, expected other-org | None)
MATRIX = {
    "imageset-list": [
        ("get", lambda o: "/api/image-sets/", None, READ, None),
        ("post", lambda o: "/api/image-sets/", lambda o: {"name": f"new-{next(o['seq'])}", "kind": "generated"}, WRITE_CREATED, None),
    ],
    "imageset-detail": [
        ("get", lambda o: f"/api/image-sets/{o['set'].pk}/", None, READ, HIDDEN),
        ("patch", lambda o: f"/api/image-sets/{o['set'].pk}/", lambda o: {"description": "x"}, _status(200, 200, 403, 403, 401), HIDDEN_WRITE),
        ("delete", lambda o: f"/api/image-sets/{o['unused'].pk}/", None, _status(204, 204, 403, 403, 401), HIDDEN_WRITE),
    ],
    "imageset-upload": [
        ("post", lambda o: f"/api/image-sets/{o['set'].pk}/upload/", lambda o: {"files": [SimpleUploadedFile("a.png", image_bytes())]},
         _status(202, 202, 403, 403, 401), HIDDEN_WRITE),
    ],
    "image-list": [("get", lambda o: "/api/images/", None, READ, None)],
    "image-detail": [("get", lambda o: f"/api/images/{o['image'].pk}/", None, READ, HIDDEN)],
    "image-file": [("get", lambda o: f"/api/images/{o['image'].pk}/file/", None, READ, HIDDEN)],
    "ingesterror-list": [("get", lambda o: "/api/ingest-errors/", None, READ, None)],
    "ingesterror-detail": [("get", lambda o: f"/api/ingest-errors/{o['error'].pk}/", None, READ, HIDDEN)],
    "ingestjob-list": [("get", lambda o: "/api/ingest-jobs/", None, READ, None)],
    "ingestjob-detail": [("get", lambda o: f"/api/ingest-jobs/{o['job'].pk}/", None, READ, HIDDEN)],
    "imageset-copy-baseline": [
        ("post", lambda o: f"/api/image-sets/{o['set'].pk}/copy-baseline/", lambda o: {"n": 1}, _status(201, 201, 403, 403, 401), HIDDEN_WRITE),
    ],
    "generatorrun-list": [
        ("get", lambda o: "/api/generator-runs/", None, READ, None),
        ("post", lambda o: "/api/generator-runs/", lambda o: {"kind": "dcgan", "reference_set": o["set"].pk, "max_steps": 1},
         WRITE_CREATED, _status(400, 400, 403, 403, 401)),
    ],
    "generatorrun-detail": [("get", lambda o: f"/api/generator-runs/{o['run'].pk}/", None, READ, HIDDEN)],
    "generatorrun-cancel": [("post", lambda o: f"/api/generator-runs/{o['run'].pk}/cancel/", None, _status(202, 202, 403, 403, 401), HIDDEN_WRITE)],
    # The run has no checkpoint yet: a caller who passes the access check gets the clear 400 about that.
    "generatorrun-sample": [("post", lambda o: f"/api/generator-runs/{o['run'].pk}/sample/", lambda o: {"n": 2}, _status(400, 400, 403, 403, 401), HIDDEN_WRITE)],
    # Detector runs: a queued run made on the fly from the set (its sets hold one image: creating one is a clear 400).
    "detectorrun-list": [
        ("get", lambda o: "/api/detector-runs/", None, READ, None),
        ("post", lambda o: "/api/detector-runs/", lambda o: {"reference_set": o["set"].pk, "synthetic_sets": [o["spare"].pk], "minutes": 1},
         _status(400, 400, 403, 403, 401), _status(400, 400, 403, 403, 401)),
    ],
    "detectorrun-detail": [("get", lambda o: f"/api/detector-runs/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/", None, READ, HIDDEN)],
    "detectorrun-cancel": [("post", lambda o: f"/api/detector-runs/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/cancel/", None,
                            _status(202, 202, 403, 403, 401), HIDDEN_WRITE)],
    # Not trained yet: a caller who passes the access check gets the clear 400 about that.
    "detectorrun-score": [
        ("get", lambda o: f"/api/detector-runs/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/score/", None, READ, HIDDEN),
        ("post", lambda o: f"/api/detector-runs/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/score/",
         lambda o: {"image_set": o["set"].pk}, _status(400, 400, 403, 403, 401), HIDDEN_WRITE),
    ],
    "detectorrun-scores": [("get", lambda o: f"/api/detector-runs/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/scores/", None, READ, HIDDEN)],
    "audit-list": [
        ("get", lambda o: "/api/audits/", None, READ, None),
        ("post", lambda o: "/api/audits/", lambda o: {"name": "a", "generated_set": o["set"].pk, "reference_set": o["spare"].pk},
         WRITE_CREATED, _status(400, 400, 403, 403, 401)),
    ],
    "audit-detail": [
        ("get", lambda o: f"/api/audits/{o['audit'].pk}/", None, READ, HIDDEN),
        ("patch", lambda o: f"/api/audits/{o['audit'].pk}/", lambda o: {"seed": 5}, _status(200, 200, 403, 403, 401), HIDDEN_WRITE),
    ],
    # The audit's sets have no images: a caller who passes the access check gets the clear 400.
    "audit-run": [("post", lambda o: f"/api/audits/{o['audit'].pk}/run/", None, _status(400, 400, 403, 403, 401), HIDDEN_WRITE)],
    "audit-rerun": [("post", lambda o: f"/api/audits/{o['audit'].pk}/rerun/", None, _status(400, 400, 403, 403, 401), HIDDEN_WRITE)],
    # The audit is a draft, not failed: a caller who passes the access check gets the clear 409.
    "audit-retry-report": [("post", lambda o: f"/api/audits/{o['audit'].pk}/retry-report/", None, _status(409, 409, 403, 403, 401), HIDDEN_WRITE)],
    "audit-results": [("get", lambda o: f"/api/audits/{o['audit'].pk}/results/", None, READ, HIDDEN)],
    "audit-reports": [("get", lambda o: f"/api/audits/{o['audit'].pk}/reports/", None, READ, HIDDEN)],
    "report-list": [("get", lambda o: "/api/reports/", None, READ, None)],
    "report-detail": [("get", lambda o: f"/api/reports/{o['report'].pk}/", None, READ, HIDDEN)],
    "report-pdf": [("get", lambda o: f"/api/reports/{o['report'].pk}/pdf/", None, READ, HIDDEN)],
    "report-json-twin": [("get", lambda o: f"/api/reports/{o['report'].pk}/json/", None, READ, HIDDEN)],
    # Only an organisation admin who did not prepare the report may sign it (400 here: no password, meaning or
    # reason; the point is who gets past the checks).
    "report-approve": [("post", lambda o: f"/api/reports/{o['report'].pk}/approve/", None, _status(403, 400, 403, 403, 401), HIDDEN_WRITE)],
    "audit-trail": [("get", lambda o: f"/api/audits/{o['audit'].pk}/trail/", None, READ, HIDDEN)],
    "web:audit-list": [("get", lambda o: "/audits/", None, WEB_READ, None)],
    "web:audit-detail": [("get", lambda o: f"/audits/{o['audit'].pk}/", None, WEB_READ, WEB_HIDDEN)],
    "web:audit-run": [("post", lambda o: f"/audits/{o['audit'].pk}/run/", None, _status(302, 302, 403, 403, 302), WEB_HIDDEN)],
    "web:report-download": [("get", lambda o: f"/reports/{o['report'].pk}/pdf/", None, WEB_READ, WEB_HIDDEN)],
    "web:report-download-json": [("get", lambda o: f"/reports/{o['report'].pk}/json/", None, WEB_READ, WEB_HIDDEN)],
    # The signature form: admins who did not prepare the report; everyone else a page that says why (403).
    "web:report-approve": [("get", lambda o: f"/reports/{o['report'].pk}/approve/", None, _status(403, 200, 403, 403, 302), WEB_HIDDEN),
                           ("post", lambda o: f"/reports/{o['report'].pk}/approve/", None, _status(403, 400, 403, 403, 302), WEB_HIDDEN)],
    "api-schema": [("get", lambda o: "/api/schema/", None, _status(200, 200, 200, 200, 401), None)],
    "api-docs": [("get", lambda o: "/api/docs/", None, _status(200, 200, 200, 200, 401), None)],
    "api-token": [("post", lambda o: "/api/token/", lambda o: {"username": "nobody", "password": "x"}, _status(400, 400, 400, 400, 400), None)],
    "web:home": [("get", lambda o: "/", None, _status(302, 302, 302, 302, 302), None)],  # readers go to their studies
    "web:imageset-list": [("get", lambda o: "/sets/", None, WEB_READ, None)],
    "web:imageset-detail": [("get", lambda o: f"/sets/{o['set'].pk}/", None, WEB_READ, WEB_HIDDEN)],
    # Images, their thumbnails and pages, and the audit's charts and pictures: never for readers (blinding).
    "web:imageset-images": [("get", lambda o: f"/sets/{o['set'].pk}/images/", None, WEB_READ, WEB_HIDDEN)],
    "web:image-detail": [("get", lambda o: f"/images/{o['image'].pk}/", None, WEB_READ, WEB_HIDDEN)],
    "web:image-thumbnail": [("get", lambda o: f"/images/{o['image'].pk}/thumbnail/320/", None, WEB_READ, WEB_HIDDEN)],
    "web:audit-compare": [("get", lambda o: f"/audits/compare/?a={o['audit'].pk}&b={o['audit'].pk}", None, WEB_READ, WEB_HIDDEN)],
    "web:report-chart": [("get", lambda o: f"/reports/{illustrated_report(o['audit']).pk}/charts/0/", None, WEB_READ, WEB_HIDDEN)],
    "web:report-picture": [("get", lambda o: f"/reports/{illustrated_report(o['audit']).pk}/pictures/0/", None, WEB_READ, WEB_HIDDEN)],
    "web:imageset-upload": [
        ("post", lambda o: f"/sets/{o['set'].pk}/upload/", lambda o: {"files": [SimpleUploadedFile("b.png", image_bytes(seed=9))]},
         _status(202, 202, 403, 403, 302), WEB_HIDDEN),
    ],
    "web:imageset-train": [
        ("post", lambda o: f"/sets/{o['set'].pk}/train/", lambda o: {"kind": "dcgan", "minutes": 0.1, "image_size": 32, "seed": 0},
         _status(302, 302, 403, 403, 302), WEB_HIDDEN),
    ],
    "web:generator-detail": [("get", lambda o: f"/generators/{o['run'].pk}/", None, WEB_READ, WEB_HIDDEN)],
    "web:generator-cancel": [("post", lambda o: f"/generators/{o['run'].pk}/cancel/", None, _status(302, 302, 403, 403, 302), WEB_HIDDEN)],
    "web:generator-sample": [("post", lambda o: f"/generators/{o['run'].pk}/sample/", lambda o: {"n": 2, "seed": 0}, _status(302, 302, 403, 403, 302), WEB_HIDDEN)],
    "web:detector-list": [
        ("get", lambda o: "/detectors/", None, WEB_READ, None),
        # A generated set is no reference set: the form comes back with the error (200) to those who may train.
        ("post", lambda o: "/detectors/", lambda o: {"reference_set": o["set"].pk, "synthetic_sets": [o["spare"].pk], "minutes": 1, "seed": 0},
         _status(200, 200, 403, 403, 302), None),
    ],
    "web:detector-detail": [("get", lambda o: f"/detectors/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/", None, WEB_READ, WEB_HIDDEN)],
    "web:detector-cancel": [("post", lambda o: f"/detectors/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/cancel/", None,
                             _status(302, 302, 403, 403, 302), WEB_HIDDEN)],
    "web:detector-score": [("post", lambda o: f"/detectors/{o['set'].detector_runs_as_real.create(organisation=o['set'].organisation).pk}/score/",
                            lambda o: {"image_set": o["set"].pk}, _status(302, 302, 403, 403, 302), WEB_HIDDEN)],
    "web:detector-scoring": [("get", lambda o: (lambda run: f"/detectors/{run.pk}/scorings/{run.scorings.create(image_set=o['set']).pk}/")(
        o["set"].detector_runs_as_real.create(organisation=o["set"].organisation)), None, WEB_READ, WEB_HIDDEN)],
    "web:job-status": [("get", lambda o: f"/jobs/{o['job'].pk}/", None, WEB_READ, WEB_HIDDEN)],
}


try:  # each app contributes its own rows (and the objects they need) to the one matrix
    from tests.reader_study.authz import MATRIX as READER_STUDY_MATRIX, make_objects as make_reader_study_objects
except ImportError:  # the app has no endpoints yet
    READER_STUDY_MATRIX, make_reader_study_objects = {}, None
MATRIX.update(READER_STUDY_MATRIX)


def _named_patterns(patterns, namespace: str | None = None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            if inner in EXCLUDED_NAMESPACES:
                continue
            yield from _named_patterns(pattern.url_patterns, f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


_TAGS = itertools.count()


def _objects(organisation: Organisation, hint: str) -> dict:
    tag = f"{hint}{next(_TAGS)}"
    image_set = ImageSet.objects.create(organisation=organisation, name=f"set-{tag}", kind="generated")
    spare = ImageSet.objects.create(organisation=organisation, name=f"spare-{tag}", kind="generated")
    unused = ImageSet.objects.create(organisation=organisation, name=f"unused-{tag}", kind="generated")
    job = IngestJob.objects.create(image_set=image_set, source="x", status="succeeded")
    image = Image.objects.create(image_set=image_set, sha256="0" * 64, pixel_sha256=f"{tag:0>64}", source_sha256="0" * 64,
                                 file="images/test.png", original_name="a.png", width=1, height=1,
                                 original_format="PNG", original_mode="RGB")
    error = IngestError.objects.create(image_set=image_set, job=job, file_name="bad.png", reason="corrupt")
    run = GeneratorRun.objects.create(organisation=organisation, kind="dcgan", reference_set=image_set, max_steps=1)
    audit = Audit.objects.create(organisation=organisation, name=f"audit-{tag}", generated_set=image_set, reference_set=spare)
    report_file = Path(settings.MEDIA_ROOT) / f"report-{tag}.pdf"
    report_file.write_bytes(b"%PDF-1.4 test")
    report = Report.objects.create(audit=audit, version=1, pdf=str(report_file), json=str(report_file), pdf_sha256="0" * 64)
    objects = {"set": image_set, "spare": spare, "unused": unused, "job": job, "image": image, "error": error, "run": run, "audit": audit, "report": report, "seq": _TAGS}
    if make_reader_study_objects is not None:
        objects.update(make_reader_study_objects(organisation, tag, objects))
    return objects


def test_every_endpoint_has_an_entry():
    names = set(_named_patterns(get_resolver().url_patterns)) - EXCLUDED
    missing = sorted(names - set(MATRIX))
    assert not missing, f"add these endpoints to the authorization MATRIX: {missing}"
    stale = sorted(set(MATRIX) - names)
    assert not stale, f"MATRIX names endpoints that no longer exist: {stale}"


@pytest.fixture
def world(django_capture_on_commit_callbacks, settings, tmp_path):
    from django.core.cache import cache

    cache.clear()  # the token endpoint's rate limit must not carry over between tests
    (settings.MEDIA_ROOT / "images").mkdir(parents=True, exist_ok=True)
    (settings.MEDIA_ROOT / "images" / "test.png").write_bytes(image_bytes())
    own_org, other_org = Organisation.objects.create(name="Own"), Organisation.objects.create(name="Other")
    clients = {}
    for role in ROLES[:-1]:
        user = make_user(f"{role}-user", own_org, role)
        api = api_client_for(user)
        web = APIClient()
        web.force_login(user)
        clients[role] = (api, web)
    clients["anonymous"] = (APIClient(), APIClient())
    return {"own": own_org, "other": other_org, "clients": clients}


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_matrix(world, name, django_capture_on_commit_callbacks):
    failures = []
    for method, url_of, payload_of, own_expected, other_expected in MATRIX[name]:
        for scope, expected in (("own", own_expected), ("other", other_expected)):
            if expected is None:
                continue
            for role in ROLES:
                objects = _objects(world[scope], f"{role[0]}{scope[0]}{method[0]}")
                api, web = world["clients"][role]
                client = web if name.startswith(("web:", "reader_study:")) else api
                payload = payload_of(objects) if payload_of else None
                fmt = "multipart" if payload and "files" in payload else "json"
                with django_capture_on_commit_callbacks(execute=True):
                    response = getattr(client, method)(url_of(objects), payload, format=fmt)
                if response.status_code != expected[role]:
                    failures.append(f"{method.upper()} {name} as {role} on {scope} org: {response.status_code} != {expected[role]}")
    assert not failures, "\n".join(failures)


def test_list_endpoints_never_show_another_organisations_rows(world):
    _objects(world["own"], "mine")
    _objects(world["other"], "theirs")
    api, _ = world["clients"]["quality"]
    for url in ["/api/image-sets/", "/api/images/", "/api/ingest-errors/", "/api/ingest-jobs/"]:
        rows = api.get(url).json()["results"]
        assert rows, url
        for row in rows:
            set_id = row.get("image_set", row.get("id"))
            assert ImageSet.objects.get(pk=set_id).organisation_id == world["own"].pk, url


def test_a_user_in_two_organisations_must_name_one_when_creating(world):
    user = make_user("two-orgs", world["own"], Role.QUALITY)
    from auditor.models import Membership

    Membership.objects.create(user=user, organisation=world["other"], role=Role.QUALITY)
    client = api_client_for(user)
    assert client.post("/api/image-sets/", {"name": "n", "kind": "generated"}, format="json").status_code == 400
    created = client.post("/api/image-sets/", {"name": "n", "kind": "generated", "organisation": world["other"].pk}, format="json")
    assert created.status_code == 201 and created.json()["organisation"] == world["other"].pk
    stranger_org = Organisation.objects.create(name="Stranger")
    refused = client.post("/api/image-sets/", {"name": "m", "kind": "generated", "organisation": stranger_org.pk}, format="json")
    assert refused.status_code == 400
