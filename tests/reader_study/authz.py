"""Reader-study rows of the authorization matrix (tests/auditor/test_authorization.py imports MATRIX and
make_objects). Same entry format: name -> [(method, url(objects), payload(objects) | None, own, other | None)].

Roles: quality/admin run studies, developers read them, readers only reach their own cases. Another
organisation's study or case is not found (404); a role that may never do something is refused first (403).
"""
from __future__ import annotations

from auditor.models import Image, ImageSet, Membership, Organisation, Role
from reader_study.models import ReaderProfile
from reader_study.services import ArmSpec

from .helpers import studies_in_every_state


def _status(quality, admin, developer, reader, anonymous) -> dict[str, int]:
    return dict(zip(["quality", "admin", "developer", "reader", "anonymous"], [quality, admin, developer, reader, anonymous]))


def _form(**fields) -> dict:
    # The matrix sends JSON unless the payload has a "files" key; web views read form posts like a browser sends.
    return {"files": [], **fields}


READ = _status(200, 200, 200, 403, 401)
HIDDEN = _status(404, 404, 404, 403, 401)
WRITE_OK = _status(200, 200, 403, 403, 401)
HIDDEN_WRITE = _status(404, 404, 403, 403, 401)
READER_ONLY = _status(403, 403, 403, 200, 401)
READER_HIDDEN = _status(403, 403, 403, 404, 401)
WEB_READ = _status(200, 200, 200, 403, 302)
WEB_HIDDEN = _status(404, 404, 404, 403, 302)
WEB_WRITE = _status(302, 302, 403, 403, 302)
WEB_READER = _status(403, 403, 403, 200, 302)
WEB_READER_HIDDEN = _status(403, 403, 403, 404, 302)

STUDIES = "/api/reader-studies"

MATRIX = {
    "readerstudy-list": [
        ("get", lambda o: f"{STUDIES}/", None, READ, None),
        ("post", lambda o: f"{STUDIES}/",
         lambda o: {"name": f"s-{next(o['seq'])}", "image_size": 64,
                    "arms": [{"image_set": o["set"].pk, "count": 1}, {"image_set": o["ref_set"].pk, "count": 1}]},
         _status(201, 201, 403, 403, 401), None),
    ],
    "readerstudy-detail": [("get", lambda o: f"{STUDIES}/{o['study'].pk}/", None, READ, HIDDEN)],
    "readerstudy-open": [("post", lambda o: f"{STUDIES}/{o['draft'].pk}/open/", None, WRITE_OK, HIDDEN_WRITE)],
    "readerstudy-pause": [("post", lambda o: f"{STUDIES}/{o['study'].pk}/pause/", None, WRITE_OK, HIDDEN_WRITE)],
    "readerstudy-close": [("post", lambda o: f"{STUDIES}/{o['study'].pk}/close/", None, WRITE_OK, HIDDEN_WRITE)],
    "readerstudy-invite": [
        ("post", lambda o: f"{STUDIES}/{o['draft'].pk}/invite/", lambda o: {"readers": [o["reader"].pk]}, WRITE_OK, HIDDEN_WRITE),
    ],
    "readerstudy-results": [
        ("get", lambda o: f"{STUDIES}/{o['closed'].pk}/results/", None, READ, HIDDEN),
        ("get", lambda o: f"{STUDIES}/{o['study'].pk}/results/", None, _status(409, 409, 409, 403, 401), HIDDEN),
        ("get", lambda o: f"{STUDIES}/{o['study'].pk}/results/?interim=1", None, _status(200, 200, 403, 403, 401), HIDDEN),
    ],
    "readerstudy-answers": [
        ("get", lambda o: f"{STUDIES}/{o['closed'].pk}/answers/", None, READ, HIDDEN),
        ("get", lambda o: f"{STUDIES}/{o['study'].pk}/answers/", None, _status(409, 409, 409, 403, 401), HIDDEN),
    ],
    "readerassignment-list": [("get", lambda o: "/api/reader/assignments/", None, READER_ONLY, None)],
    "readerassignment-next": [
        ("get", lambda o: f"/api/reader/assignments/{o['assignment'].pk}/next/", None, READER_ONLY, READER_HIDDEN),
    ],
    "readercase-image": [
        ("get", lambda o: f"/api/reader/cases/{o['showing'].token}/image/", None, READER_ONLY, READER_HIDDEN),
    ],
    "readercase-answer": [
        ("post", lambda o: f"/api/reader/cases/{o['showing'].token}/answer/", lambda o: {"call": "real", "confidence": 3, "quality": 4},
         _status(403, 403, 403, 201, 401), READER_HIDDEN),
        ("put", lambda o: f"/api/reader/cases/{o['answered'].token}/answer/", lambda o: {"call": "synthetic", "confidence": 5, "quality": 4},
         READER_ONLY, READER_HIDDEN),
    ],
    "reader_study:home": [("get", lambda o: "/studies/", None, _status(302, 302, 302, 200, 302), None)],
    "reader_study:profile": [("get", lambda o: "/studies/profile/", None, WEB_READER, None)],
    "reader_study:read": [
        ("get", lambda o: f"/studies/{o['study'].pk}/read/", None, WEB_READER, WEB_READER_HIDDEN),
        ("post", lambda o: f"/studies/{o['study'].pk}/read/",
         lambda o: _form(token=o["showing"].token, call="real", confidence="3", quality="4"),
         _status(403, 403, 403, 302, 302), WEB_READER_HIDDEN),
    ],
    "reader_study:revisit": [
        ("get", lambda o: f"/studies/{o['study'].pk}/read/{o['answered'].token}/", None, WEB_READER, WEB_READER_HIDDEN),
    ],
    "reader_study:study-list": [("get", lambda o: "/studies/manage/", None, WEB_READ, None)],
    "reader_study:study-create": [("get", lambda o: "/studies/manage/new/", None, _status(200, 200, 403, 403, 302), None)],
    "reader_study:study-detail": [("get", lambda o: f"/studies/manage/{o['study'].pk}/", None, WEB_READ, WEB_HIDDEN)],
    "reader_study:study-status": [
        ("post", lambda o: f"/studies/manage/{o['study'].pk}/status/", lambda o: _form(action="pause"), WEB_WRITE, WEB_HIDDEN),
    ],
    "reader_study:study-invite": [
        ("post", lambda o: f"/studies/manage/{o['draft'].pk}/invite/", lambda o: _form(readers=str(o["reader"].pk)),
         WEB_WRITE, WEB_HIDDEN),
    ],
    "reader_study:study-results": [
        ("get", lambda o: f"/studies/manage/{o['closed'].pk}/results/", None, WEB_READ, WEB_HIDDEN),
    ],
}


def _reader_of(organisation: Organisation, tag: str):
    """The world's "reader-user" in its own organisation; a fresh reader elsewhere (their cases are the
    ones another organisation's reader must not reach)."""
    from django.contrib.auth import get_user_model

    membership = Membership.objects.filter(organisation=organisation, role=Role.READER,
                                           user__username="reader-user").select_related("user").first()
    if membership is not None:
        user = membership.user
    else:
        user = get_user_model().objects.create_user(username=f"reader-{tag}")
        Membership.objects.create(user=user, organisation=organisation, role=Role.READER)
    ReaderProfile.objects.get_or_create(user=user, defaults={"specialty": "dermatology", "years_experience": 5,
                                                             "board_certified": True})
    return user


def make_objects(organisation: Organisation, tag: str, base_objects: dict) -> dict:
    """Studies of this organisation: a draft, an open one with the reader invited (one case answered, the
    next waiting) and a closed one with an answer."""
    reference = ImageSet.objects.create(organisation=organisation, name=f"ref-{tag}", kind=ImageSet.Kind.REFERENCE)
    Image.objects.create(image_set=reference, sha256="1" * 64, pixel_sha256=f"r{tag:0>63}", source_sha256="1" * 64,
                         file="images/test.png", original_name="r.png", width=1, height=1,
                         original_format="PNG", original_mode="RGB")
    reader = _reader_of(organisation, tag)
    studies = studies_in_every_state(organisation, reader, (ArmSpec(base_objects["set"].pk, 1),
                                                            ArmSpec(reference.pk, 1)), tag)
    return {"ref_set": reference, "reader": reader, **studies}
