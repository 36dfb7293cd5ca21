from tests.auditor.conftest import _media_root, image_set, org, other_org, quality_user, users  # noqa: F401  (shared fixtures)
