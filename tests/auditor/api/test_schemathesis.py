"""The OpenAPI schema served at /api/schema/ is the contract: schemathesis fuzzes every operation through the WSGI
application in-process, with a token of each role obtained from /api/token/ (and with none), and checks that the
server never errors (not_a_server_error), that every status code it answers is documented
(status_code_conformance) and that every documented body matches its schema (response_schema_conformance).

Each operation gets positive cases (valid by the schema) with generated ids, positive cases aimed at this
organisation's real objects (so the handlers run past their lookups; where a valid body depends on those objects,
one such body too), and negative cases (invalid by the schema). Another organisation's objects exist as well.

Long jobs: the test runs inside one database transaction that is rolled back at the end, so the jobs that views
queue with `transaction.on_commit` (importing an upload, training a generator or a detector, scoring a set,
running or re-running an audit) never start: those requests are fuzzed and checked like every other, and the
test asserts afterwards that no job ran. No operation and no check is skipped.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings, strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from werkzeug.test import Client as WerkzeugClient

from auditor.models import (Audit, DetectorRun, DetectorScoring, GeneratorRun, ImageScore, ImageSet, IngestJob,
                            Organisation, Report, Role)
from reader_study.models import ReaderProfile
from reader_study.services import ArmSpec
from tests.reader_study.helpers import studies_in_every_state

from tests.auditor.conftest import make_user
from tests.auditor.ingest_helpers import ingest_paths

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = {"random ids": 6, "own objects": 8, "negative": 4}
PASSWORD = "correct-horse-battery"
# Operations that answered 2xx at least once (measured: quality and admin 40, developer 28, reader 6, anonymous 1
# of 57): a floor, so that a fixture that stops working shows up instead of a fuzzer that only meets 404s.
MIN_OPERATIONS_SUCCEEDING = {Role.QUALITY: 35, Role.ADMIN: 35, Role.DEVELOPER: 24, Role.READER: 5, "anonymous": 1}


@pytest.fixture
def wsgi_app():
    # Django's test client disconnects these handlers for the same reason: closing "old" connections at the end
    # of a request would close the test's connection, and with it the transaction that holds the test data.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _organisation_objects(organisation: Organisation, tag: str, isic_dir: Path, pad_dir: Path, reader) -> dict:
    """Image sets with real images (and ingest errors), a draft audit with a report, generator and detector runs,
    and reader studies in each state with the reader invited. Returns the ids each path parameter can take, and
    for the operations whose valid bodies depend on these objects (which a schema cannot say) one valid body."""
    # A name of the longest length allowed: names derived from it (copy baselines) must still fit.
    reference = ImageSet.objects.create(organisation=organisation, name=f"isic-{tag}-".ljust(200, "x"),
                                        kind=ImageSet.Kind.REFERENCE)
    generated = ImageSet.objects.create(organisation=organisation, name=f"gan-{tag}", kind=ImageSet.Kind.GENERATED)
    unused = ImageSet.objects.create(organisation=organisation, name=f"unused-{tag}", kind=ImageSet.Kind.BASELINE)
    ingest_paths(reference, sorted((isic_dir / "images").glob("*.jpg"))[:3] + [isic_dir / "labels.csv"])
    bad = Path(settings.MEDIA_ROOT) / f"notes-{tag}.png"  # text posing as an image: an ingest error with its reason
    bad.write_text("not an image")
    job = ingest_paths(generated, sorted((pad_dir / "images").glob("*.png"))[:3] + [bad])
    audit = Audit.objects.create(organisation=organisation, name=f"audit-{tag}", generated_set=generated,
                                 reference_set=unused)
    pdf, json_twin = Path(settings.MEDIA_ROOT) / f"report-{tag}.pdf", Path(settings.MEDIA_ROOT) / f"report-{tag}.json"
    pdf.write_bytes(b"%PDF-1.4 placeholder")
    json_twin.write_text('{"audit": "placeholder"}')
    report = Report.objects.create(audit=audit, version=1, pdf=str(pdf), json=str(json_twin), pdf_sha256="0" * 64)
    run = GeneratorRun.objects.create(organisation=organisation, kind="dcgan", reference_set=reference, max_steps=1)
    detector = DetectorRun.objects.create(organisation=organisation, reference_set=reference, max_seconds=60)
    detector.synthetic_sets.add(generated)
    ImageScore.objects.bulk_create([ImageScore(detector=detector, image=image, probability_synthetic=0.5)
                                    for image in generated.images.all()])

    studies = studies_in_every_state(organisation, reader, (ArmSpec(generated.pk, 2), ArmSpec(reference.pk, 2)), tag)
    study, draft, closed = studies["study"], studies["draft"], studies["closed"]
    answered, waiting = studies["answered"], studies["showing"]
    ids = {
        "image-sets": [reference.pk, generated.pk], "images": list(reference.images.values_list("pk", flat=True)[:2]),
        "ingest-errors": list(generated.ingest_errors.values_list("pk", flat=True)), "ingest-jobs": [str(job.pk)],
        "generator-runs": [run.pk], "detector-runs": [detector.pk], "audits": [audit.pk], "reports": [str(report.pk)],
        "reader-studies": [study.pk, draft.pk, closed.pk], "reader/assignments": [study.assignments.get().pk],
        "reader/cases": [waiting.token, answered.token],
    }
    answer = {"call": "real", "confidence": 3, "quality": 4}
    bodies = {
        ("POST", "/api/audits/"): {"name": "fuzzed", "generated_set": generated.pk, "reference_set": reference.pk},
        ("POST", "/api/generator-runs/"): {"kind": "dcgan", "reference_set": reference.pk, "max_steps": 1},
        ("POST", "/api/detector-runs/"): {"reference_set": reference.pk, "synthetic_sets": [generated.pk], "minutes": 0.1},
        ("POST", "/api/detector-runs/{id}/score/"): {"image_set": generated.pk},
        ("POST", "/api/reader-studies/"): {"name": "fuzzed", "image_size": 64, "arms": [
            {"image_set": generated.pk, "count": 1}, {"image_set": reference.pk, "count": 1}]},
        ("POST", "/api/reader-studies/{id}/invite/"): {"readers": [reader.pk]},
        ("POST", "/api/reader/cases/{token}/answer/"): answer,
        ("PUT", "/api/reader/cases/{token}/answer/"): answer,
    }
    return {"ids": ids, "bodies": bodies, "unused": unused.pk}


@pytest.fixture
def world(org, other_org, isic_dir, pad_dir):
    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)  # a fresh folder per test (tests/auditor/conftest.py)
    users = {role: make_user(f"{role}-a", org, role) for role in (Role.QUALITY, Role.DEVELOPER, Role.READER, Role.ADMIN)}
    ReaderProfile.objects.create(user=users[Role.READER], specialty="dermatology", years_experience=5, board_certified=True)
    own = _organisation_objects(org, "own", isic_dir, pad_dir, users[Role.READER])
    other_reader = make_user("reader-b", other_org, Role.READER)
    ReaderProfile.objects.create(user=other_reader, specialty="dermatology", years_experience=5, board_certified=True)
    _organisation_objects(other_org, "other", isic_dir, pad_dir, other_reader)
    return {"users": users, "own": own}


def _token(app, username: str) -> str:
    response = WerkzeugClient(app).post("/api/token/", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_data()
    return response.get_json()["token"]


def _own_ids(operation, own: dict) -> list:
    """This organisation's objects for an operation's path parameter (DELETE only ever aims at the unused set)."""
    if operation.method.upper() == "DELETE":
        return [own["unused"]]
    for prefix, ids in own["ids"].items():
        if operation.path.startswith(f"/api/{prefix}/"):
            return ids
    return []


def _fuzz_operation(operation, headers: dict, own_ids: list, body: dict | None, failures: dict, seen: Counter) -> None:
    parameter = next(iter(p.name for p in operation.path_parameters), None)
    strategies = {"random ids": operation.as_strategy()}
    aimed = []
    if parameter and own_ids:
        aimed += [operation.as_strategy(path_parameters={parameter: value}) for value in own_ids]
    if body is not None:
        json_body = {"body": body, "media_type": "application/json"}
        aimed += ([operation.as_strategy(path_parameters={parameter: value}, **json_body) for value in own_ids]
                  if parameter else [operation.as_strategy(**json_body)])
    if aimed:
        strategies["own objects"] = st.one_of(*aimed)
    strategies["negative"] = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    for kind, strategy in strategies.items():

        # Failures are collected, not raised, so there is nothing to shrink; derandomised: every run sends the same.
        @hypothesis_settings(max_examples=EXAMPLES[kind], deadline=None, derandomize=True, database=None,
                             phases=[Phase.explicit, Phase.generate],
                             suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            response = case.call(headers=headers)
            seen[(operation.label, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as exc:  # collected: one report lists every operation that breaks the contract
                for failure in exc.exceptions:
                    failures.setdefault((operation.label, kind, failure.title), str(exc)[:3000])

        try:
            run()
        except Unsatisfiable:
            # Negative mode has nothing to break in an operation without parameters or body.
            assert kind == "negative", (operation.label, kind)
            seen[(operation.label, "no negative cases")] += 1


@pytest.mark.parametrize("role", [Role.QUALITY, Role.DEVELOPER, Role.READER, Role.ADMIN, "anonymous"])
def test_every_operation_honours_the_schema(role, world, wsgi_app):
    from django.core.cache import cache

    cache.clear()  # the token endpoint's rate limit starts afresh
    user = world["users"].get(role, world["users"][Role.DEVELOPER])  # anonymous: the schema itself needs a login
    token = _token(wsgi_app, user.username)
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app, headers={"Authorization": f"Token {token}"})
    headers = {} if role == "anonymous" else {"Authorization": f"Token {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    # Edits come late and deletes last, so the other operations meet the objects as built (names of the longest
    # length, studies in each state) and those objects still exist.
    operations.sort(key=lambda op: ({"PUT": 1, "PATCH": 1, "DELETE": 2}.get(op.method.upper(), 0), op.path, op.method))
    failures: dict = {}
    seen: Counter = Counter()
    own = world["own"]
    jobs_before = list(IngestJob.objects.values_list("pk", flat=True))
    # The caller's own credentials for the token endpoint (until its rate limit answers 429).
    bodies = {**own["bodies"], ("POST", "/api/token/"): {"username": user.username, "password": PASSWORD}}
    for operation in operations:
        body = bodies.get((operation.method.upper(), operation.path))
        _fuzz_operation(operation, headers, _own_ids(operation, own), body, failures, seen)
    assert not failures, "\n\n".join(f"{key}\n{text}" for key, text in sorted(failures.items()))[:30000]
    # Not vacuous: every operation was called, and the roles got past the checks where they may.
    assert {label for label, _ in seen} == {op.label for op in operations}
    succeeded = {label for label, code in seen if isinstance(code, int) and 200 <= code < 300}
    assert len(succeeded) >= MIN_OPERATIONS_SUCCEEDING[role], sorted({op.label for op in operations} - succeeded)
    # Jobs were queued (the requests were accepted) but none ran: the transaction that would have started them
    # was never committed.
    for model in (Audit, GeneratorRun, DetectorRun, DetectorScoring):
        assert not model.objects.filter(started_at__isnull=False).exists(), model
    assert not IngestJob.objects.exclude(pk__in=jobs_before).filter(started_at__isnull=False).exists()
