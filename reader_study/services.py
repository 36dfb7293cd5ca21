"""What a study can do: be designed, invite readers, open/pause/close, serve cases, take answers.

Web views and the API both call these functions; they hold the rules (status checks, locking, validation) so
that the two front doors cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count
from django.utils import timezone

from auditor.models import Image, ImageSet, Organisation, Role

from .blinding import prepare_study_images
from .models import SYNTHETIC_KINDS, Answer, Assignment, Case, Showing, Study, StudyArm
from .sampling import ArmPool, SelectionError, derive_seed, reading_order, select_cases

MAX_CASES = 5000


class StudyError(Exception):
    """A request the study's design or state does not allow; the message is shown to the user."""


class StudyNotOpen(StudyError):
    pass


@dataclass(frozen=True)
class ArmSpec:
    image_set_id: int
    count: int


@dataclass(frozen=True)
class StudyDesign:
    name: str
    arms: tuple[ArmSpec, ...]
    description: str = ""
    balance_by: str = ""
    repeat_fraction: float = 0.0
    ask_call: bool = True
    confidence_scale: str = Study.ConfidenceScale.FIVE_POINT
    ask_quality: bool = True
    ask_diagnosis: bool = False
    allow_changes: bool = False
    image_size: int = 512
    seed: int | None = None


# ---------------------------------------------------------------------------------------------------------
# Design
# ---------------------------------------------------------------------------------------------------------

def _check_design(organisation: Organisation, design: StudyDesign) -> list[ImageSet]:
    if not design.arms:
        raise StudyError("choose at least one generated and one reference image set")
    set_ids = [arm.image_set_id for arm in design.arms]
    if len(set(set_ids)) != len(set_ids):
        raise StudyError("each image set can be one arm only")
    sets = {s.pk: s for s in ImageSet.objects.filter(pk__in=set_ids, organisation=organisation)}
    if len(sets) != len(set_ids):
        raise StudyError("every image set must belong to the study's organisation")
    kinds = {sets[i].kind in SYNTHETIC_KINDS for i in set_ids}
    if kinds != {True, False}:
        raise StudyError("a study needs at least one generated and at least one reference image set")
    if any(arm.count < 1 for arm in design.arms):
        raise StudyError("every arm needs a count of at least 1")
    if sum(arm.count for arm in design.arms) > MAX_CASES:
        raise StudyError(f"at most {MAX_CASES} cases per study")
    if not 0 <= design.repeat_fraction <= 0.5:
        raise StudyError("the repeated-case fraction must be between 0 and 0.5")
    if design.balance_by not in Study.BalanceBy.values:
        raise StudyError(f"balance_by must be one of {Study.BalanceBy.values}")
    if design.confidence_scale not in Study.ConfidenceScale.values:
        raise StudyError(f"confidence_scale must be one of {Study.ConfidenceScale.values}")
    if not 64 <= design.image_size <= 2048:
        raise StudyError("image_size must be between 64 and 2048 pixels")
    if not (design.ask_call or design.ask_quality or design.ask_diagnosis):
        raise StudyError("ask at least one question")
    if Study.objects.filter(organisation=organisation, name=design.name).exists():
        raise StudyError("a study with this name already exists")
    return [sets[i] for i in set_ids]


def create_study(organisation: Organisation, design: StudyDesign, created_by=None) -> Study:
    """Validate the design, draw the cases (seeded) and store the study as a draft."""
    from .tasks import prepare_study_images_task

    image_sets = _check_design(organisation, design)
    study = Study(
        organisation=organisation, name=design.name, description=design.description,
        balance_by=design.balance_by, repeat_fraction=design.repeat_fraction, ask_call=design.ask_call,
        confidence_scale=design.confidence_scale if design.ask_call else Study.ConfidenceScale.NONE,
        ask_quality=design.ask_quality, ask_diagnosis=design.ask_diagnosis, allow_changes=design.allow_changes,
        image_size=design.image_size, created_by=created_by,
    )
    if design.seed is not None:
        study.seed = design.seed
    label_field = design.balance_by or "diagnosis"
    pools, images_by_id = [], {}
    for image_set, arm in zip(image_sets, design.arms):
        rows = list(image_set.images.values_list("id", label_field))
        pools.append(ArmPool(name=str(image_set.pk), count=arm.count, images=rows))
    try:
        chosen = select_cases(pools, study.seed, balance=bool(design.balance_by))
    except SelectionError as exc:
        raise StudyError(str(exc)) from None
    for image in Image.objects.filter(pk__in=[i for ids in chosen.values() for i in ids]):
        images_by_id[image.pk] = image
    diagnoses = sorted({img.diagnosis for img in images_by_id.values() if img.diagnosis})
    if design.ask_diagnosis and len(diagnoses) < 2:
        raise StudyError("the diagnosis question needs at least two diagnosis labels among the chosen images")
    study.diagnosis_choices = diagnoses if design.ask_diagnosis else []
    with transaction.atomic():
        try:
            study.save()
        except IntegrityError:
            raise StudyError("a study with this name already exists") from None
        for image_set, arm_spec in zip(image_sets, design.arms):
            truth = image_set.kind in SYNTHETIC_KINDS
            arm = StudyArm.objects.create(study=study, image_set=image_set, count=arm_spec.count,
                                          truth_synthetic=truth, label=image_set.name)
            Case.objects.bulk_create([
                Case(study=study, arm=arm, image=images_by_id[i], truth_synthetic=truth,
                     reference_diagnosis=images_by_id[i].diagnosis, image_sha256=images_by_id[i].sha256)
                for i in chosen[str(image_set.pk)]
            ])
        # Warm the blinded-image cache now (a worker in production), so opening the study is quick.
        transaction.on_commit(lambda: prepare_study_images_task.delay(study.pk))
    return study


# ---------------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------------

def eligible_readers(organisation: Organisation):
    return get_user_model().objects.filter(
        memberships__organisation=organisation, memberships__role=Role.READER
    ).order_by("username")


def invite_readers(study: Study, readers, invited_by=None) -> list[Assignment]:
    """Give each reader their own seeded order (idempotent: an invited reader keeps theirs)."""
    if study.is_closed:
        raise StudyError("the study is closed")
    allowed = set(eligible_readers(study.organisation).values_list("pk", flat=True))
    readers = list(readers)
    if any(r.pk not in allowed for r in readers):
        raise StudyError("only members of the study's organisation with the reader role can be invited")
    case_ids = list(study.cases.values_list("pk", flat=True))
    assignments = []
    for reader in readers:
        with transaction.atomic():
            seed = derive_seed("order", study.seed, reader.pk)
            assignment, created = Assignment.objects.get_or_create(
                study=study, reader=reader, defaults={"order_seed": seed, "invited_by": invited_by}
            )
            if created:
                order = reading_order(case_ids, study.repeat_fraction, assignment.order_seed)
                Showing.objects.bulk_create([
                    Showing(assignment=assignment, case_id=case_id, position=position, number=number)
                    for position, (case_id, number) in enumerate(order)
                ])
        assignments.append(assignment)
    return assignments


# ---------------------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------------------

def _locked(study: Study) -> Study:
    """The study row, locked for a status change. On SQLite (no row locks) the write lock is taken first with a
    no-op UPDATE, as in _study_status_for_answer, so that a close does not dead-lock with answers."""
    if connection.vendor != "postgresql":
        Study.objects.filter(pk=study.pk).update(status=models.F("status"))
    return Study.objects.select_for_update().get(pk=study.pk)


def open_study(study: Study) -> Study:
    study.refresh_from_db()
    if study.status not in (Study.Status.DRAFT, Study.Status.PAUSED):
        raise StudyError(f"a {study.status} study cannot be opened")
    if not study.cases.exists():
        raise StudyError("the study has no cases")
    prepare_study_images(study)  # before readers arrive: no rendering while a reader waits
    with transaction.atomic():
        locked = _locked(study)
        if locked.status not in (Study.Status.DRAFT, Study.Status.PAUSED):
            raise StudyError(f"a {locked.status} study cannot be opened")
        locked.status = Study.Status.OPEN
        locked.opened_at = locked.opened_at or timezone.now()
        locked.save(update_fields=["status", "opened_at"])
    study.refresh_from_db()
    return study


def pause_study(study: Study) -> Study:
    with transaction.atomic():
        locked = _locked(study)
        if locked.status != Study.Status.OPEN:
            raise StudyError(f"a {locked.status} study cannot be paused")
        locked.status = Study.Status.PAUSED
        locked.save(update_fields=["status"])
    study.refresh_from_db()
    return study


def close_study(study: Study) -> Study:
    """Freeze the study: no answer, change or invitation is accepted after this commits.

    The row lock waits for answers being stored right now (they hold a share lock on the study row), so every
    answer is either in before the close or refused after it.
    """
    from .tasks import compute_study_results_task

    with transaction.atomic():
        locked = _locked(study)
        if locked.is_closed:
            raise StudyError("the study is already closed")
        locked.status = Study.Status.CLOSED
        locked.closed_at = timezone.now()
        locked.save(update_fields=["status", "closed_at"])
        transaction.on_commit(lambda: compute_study_results_task.delay(locked.pk))
    study.refresh_from_db()
    return study


def change_status(study: Study, action: str) -> Study:
    actions = {"open": open_study, "pause": pause_study, "close": close_study}
    if action not in actions:
        raise StudyError(f"unknown action {action!r}")
    return actions[action](study)


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    answered: int
    total: int

    @property
    def done(self) -> bool:
        return self.answered >= self.total

    @property
    def percent(self) -> int:
        return int(100 * self.answered / self.total) if self.total else 100


def progress(assignment: Assignment) -> Progress:
    counts = assignment.showings.aggregate(total=Count("id"), answered=Count("answer"))
    return Progress(answered=counts["answered"], total=counts["total"])


def next_showing(assignment: Assignment) -> Showing | None:
    return assignment.showings.filter(answer__isnull=True).order_by("position").first()


def mark_served(showing: Showing) -> None:
    """Server-side clock for time per case: the last time this case was sent to the reader."""
    now = timezone.now()
    Showing.objects.filter(pk=showing.pk, first_served_at__isnull=True).update(first_served_at=now)
    Showing.objects.filter(pk=showing.pk).update(last_served_at=now)
    showing.first_served_at = showing.first_served_at or now
    showing.last_served_at = now


@dataclass
class AnswerValues:
    called_synthetic: bool | None = None
    confidence: int | None = None
    quality: int | None = None
    diagnosis: str = ""


@dataclass
class AnswerInvalid(Exception):
    errors: dict[str, str] = field(default_factory=dict)


def _integer(value, name: str, low: int, high: int, errors: dict) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors[name] = f"choose a whole number from {low} to {high}"
        return None
    if not low <= number <= high:
        errors[name] = f"choose a whole number from {low} to {high}"
        return None
    return number


def parse_answer(study: Study, data) -> AnswerValues:
    """Check submitted values against the study's questions; raises AnswerInvalid naming each problem."""
    errors: dict[str, str] = {}
    values = AnswerValues()
    if study.ask_call:
        call = str(data.get("call", "")).strip().lower()
        if call not in ("real", "synthetic"):
            errors["call"] = "choose real or synthetic"
        values.called_synthetic = call == "synthetic" if call in ("real", "synthetic") else None
    if study.asks_confidence:
        high = 5 if study.confidence_scale == Study.ConfidenceScale.FIVE_POINT else 100
        low = 1 if high == 5 else 0
        values.confidence = _integer(data.get("confidence"), "confidence", low, high, errors)
    if study.ask_quality:
        values.quality = _integer(data.get("quality"), "quality", 1, 5, errors)
    if study.ask_diagnosis:
        diagnosis = str(data.get("diagnosis", "")).strip()
        if diagnosis not in study.diagnosis_choices:
            errors["diagnosis"] = "choose one of the listed diagnoses"
        values.diagnosis = diagnosis
    if errors:
        raise AnswerInvalid(errors)
    return values


def _study_status_for_answer(study_id: int) -> str:
    """The study's status, read so that a concurrent close cannot slip between this check and the commit.

    PostgreSQL: a share lock on the study row. Share locks do not block each other (twenty readers answering
    at once do not queue behind one another), but close_study's FOR UPDATE waits for them, and they for it.
    SQLite has no row locks and serialises writers; a transaction that reads before it writes can dead-lock
    with another writer ("database is locked"), so there the write lock is taken first with a no-op UPDATE.
    """
    table = Study._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"SELECT status FROM {table} WHERE id = %s FOR SHARE", [study_id])
        else:
            cursor.execute(f"UPDATE {table} SET status = status WHERE id = %s", [study_id])
            cursor.execute(f"SELECT status FROM {table} WHERE id = %s", [study_id])
        row = cursor.fetchone()
    return row[0] if row else Study.Status.CLOSED


@dataclass(frozen=True)
class SubmitOutcome:
    answer: Answer
    created: bool  # False: this showing was already answered (e.g. a double-submitted form)


def submit_answer(showing: Showing, values: AnswerValues) -> SubmitOutcome:
    """Store the answer to a showing exactly once; a repeated submission returns the stored answer unchanged."""
    with transaction.atomic():
        if _study_status_for_answer(showing.assignment.study_id) != Study.Status.OPEN:
            raise StudyNotOpen("the study is not open for answers")
        now = timezone.now()
        served = showing.last_served_at or showing.first_served_at or now
        try:
            with transaction.atomic():  # savepoint: the unique key decides who stored first
                answer = Answer.objects.create(
                    showing=showing, called_synthetic=values.called_synthetic, confidence=values.confidence,
                    quality=values.quality, diagnosis=values.diagnosis, served_at=served, answered_at=now,
                    duration_ms=max(0, int((now - served).total_seconds() * 1000)),
                )
            return SubmitOutcome(answer, True)
        except IntegrityError:
            return SubmitOutcome(Answer.objects.get(showing=showing), False)


def change_answer(showing: Showing, values: AnswerValues) -> Answer:
    """Revise an answer (only in studies that allow changes, only while open)."""
    with transaction.atomic():
        if _study_status_for_answer(showing.assignment.study_id) != Study.Status.OPEN:
            raise StudyNotOpen("the study is not open for answers")
        if not showing.assignment.study.allow_changes:
            raise StudyError("answers in this study are final")
        answer = Answer.objects.select_for_update().filter(showing=showing).first()
        if answer is None:
            raise StudyError("this case has not been answered yet")
        answer.called_synthetic, answer.confidence = values.called_synthetic, values.confidence
        answer.quality, answer.diagnosis = values.quality, values.diagnosis
        answer.revisions += 1
        answer.save()
    return answer


def previous_showing(showing: Showing) -> Showing | None:
    """The answered showing just before this one (for studies that allow changes)."""
    return (showing.assignment.showings.filter(position__lt=showing.position, answer__isnull=False)
            .order_by("-position").first())


def last_answered_showing(assignment: Assignment) -> Showing | None:
    return assignment.showings.filter(answer__isnull=False).order_by("-position").first()


def reader_progress_table(study: Study) -> list[dict]:
    """Per invited reader: answered / total (what the study's manager sees while it runs; no answers)."""
    rows = (study.assignments.select_related("reader")
            .annotate(total=Count("showings"), answered=Count("showings__answer")))
    return [{"reader": a.reader.username, "answered": a.answered, "total": a.total} for a in rows]
