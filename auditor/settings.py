"""DermAudit settings.

Everything comes from the environment, with an embedded default that needs nothing installed:
SQLite, eager Celery and a local media folder. Production sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis), MEDIA_ROOT, DJANGO_SECRET_KEY and DJANGO_DEBUG=0.
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DERMAUDIT_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", "DJANGO_SECRET_KEY" not in os.environ)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-" + "x" * 40
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auditlog",  # the audit trail (auditor/models/trail.py)
    "auditor.apps.AuditorConfig",
    "reader_study.apps.ReaderStudyConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "auditor.models.trail.TrailActorMiddleware",  # who made each change in the audit trail
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "auditor.urls"
WSGI_APPLICATION = "auditor.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "auditor.web.navigation.navigation",  # the one navigation bar, from the user's roles
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
_default_sqlite = f"sqlite:///{VAR_DIR / 'dermaudit.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_sqlite),
                                              conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", 0)),
                                              conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that a real worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_dermaudit.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- media and static -----------------------------------------------------------------------
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
DERMAUDIT_MODEL_DIR = Path(os.environ.get("DERMAUDIT_MODEL_DIR", VAR_DIR / "models"))
DERMAUDIT_FEATURE_CACHE = Path(os.environ.get("DERMAUDIT_FEATURE_CACHE", VAR_DIR / "feature-cache"))
# Images per forward pass of the feature extractor in audits. On CPU, 16 is as fast as 64 (128 isic images: 3.6 s vs
# 3.7 s) and peaks ~700 MiB lower per process (1.09 vs 1.78 GiB), which matters with several workers per machine.
DERMAUDIT_FEATURE_BATCH_SIZE = int(os.environ.get("DERMAUDIT_FEATURE_BATCH_SIZE", 16))
# torch threads for an audit chunk's feature extraction (0: the process default, all cores). With W workers on a
# machine of C cores, set C // W, so that chunks running side by side do not oversubscribe the cores.
DERMAUDIT_CHUNK_THREADS = int(os.environ.get("DERMAUDIT_CHUNK_THREADS", 0))
DERMAUDIT_INCEPTION_WEIGHTS = os.environ.get("DERMAUDIT_INCEPTION_WEIGHTS", "")
# Feature precision of audits that do not choose one, written onto each audit when it starts (README, "The audit"):
# "auto" = bf16 where the CPU has native BF16 (1.6-1.8x faster on 64-px images, FD within 0.5 % of fp32), fp32
# elsewhere; "fp32" for a deployment whose audits must be re-run digit for digit on any CPU, including ones without
# BF16; or "bf16".
DERMAUDIT_FEATURE_PRECISION = os.environ.get("DERMAUDIT_FEATURE_PRECISION", "auto").strip().lower()
if DERMAUDIT_FEATURE_PRECISION not in ("auto", "fp32", "bf16"):
    raise ImproperlyConfigured(
        f"DERMAUDIT_FEATURE_PRECISION must be auto, fp32 or bf16, not {DERMAUDIT_FEATURE_PRECISION!r}")
# The audit's own detectability test (auditor/audits/detectability.py): a ViT trained per fold on the audited set vs
# the reference, for DERMAUDIT_CROSSFIT_STEPS optimiser steps in at most DERMAUDIT_CROSSFIT_EPOCHS epochs (a fixed
# budget, not seconds, so that a re-run on another machine gives the same model), and as many again for its negative
# (reference halves) and hard positive (the other half with an upsampling trace) controls. 0 epochs: skipped.
DERMAUDIT_CROSSFIT_EPOCHS = int(os.environ.get("DERMAUDIT_CROSSFIT_EPOCHS", 20))
DERMAUDIT_CROSSFIT_STEPS = int(os.environ.get("DERMAUDIT_CROSSFIT_STEPS", 100))
DERMAUDIT_CROSSFIT_FOLDS = int(os.environ.get("DERMAUDIT_CROSSFIT_FOLDS", 3))
DERMAUDIT_PROBE_PERMUTATIONS = int(os.environ.get("DERMAUDIT_PROBE_PERMUTATIONS", 100))
# Fitness for purpose (auditor/audits/utility.py): repeats of the 5-fold cross-validation with the linear probe, and for
# an audit that chooses the fine-tuned network (criterion utility_gain, "classifier": "fine_tuned") its epochs per fit
# and repeats (each fit trains the network's last stage: minutes per audit on a CPU).
DERMAUDIT_UTILITY_REPEATS = int(os.environ.get("DERMAUDIT_UTILITY_REPEATS", 5))
DERMAUDIT_UTILITY_FINETUNE_EPOCHS = int(os.environ.get("DERMAUDIT_UTILITY_FINETUNE_EPOCHS", 5))
DERMAUDIT_UTILITY_FINETUNE_REPEATS = int(os.environ.get("DERMAUDIT_UTILITY_FINETUNE_REPEATS", 1))
# Images whose Grad-CAM faithfulness (ROAD against RandomCAM) an audit measures (~0.6 s each on a CPU core).
DERMAUDIT_ROAD_IMAGES = int(os.environ.get("DERMAUDIT_ROAD_IMAGES", 32))

# --- ingestion limits -----------------------------------------------------------------------
DERMAUDIT_MAX_IMAGE_PIXELS = int(os.environ.get("DERMAUDIT_MAX_IMAGE_PIXELS", 40_000_000))
DERMAUDIT_MAX_FILE_BYTES = int(os.environ.get("DERMAUDIT_MAX_FILE_BYTES", 50 * 1024 * 1024))
DERMAUDIT_MAX_ZIP_UNCOMPRESSED = int(os.environ.get("DERMAUDIT_MAX_ZIP_UNCOMPRESSED", 4 * 1024**3))
DERMAUDIT_MAX_ZIP_RATIO = float(os.environ.get("DERMAUDIT_MAX_ZIP_RATIO", 100.0))
DERMAUDIT_MAX_UPLOAD_BYTES = int(os.environ.get("DERMAUDIT_MAX_UPLOAD_BYTES", 2 * 1024**3))
DATA_UPLOAD_MAX_NUMBER_FILES = 5000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    CELERY_BROKER_URL = "memory://"  # tasks run in-process; nothing ever connects to a broker
CELERY_TASK_EAGER_PROPAGATES = False  # a failed import is recorded on its job, not raised into the request
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True  # a killed worker's task is redelivered; stages are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("DERMAUDIT_QUEUE", "dermaudit")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Recovery from killed workers that does not depend on the broker (auditor/audits/recovery.py). A worker holding an audit
# chunk or the set-level stages renews its lease every third of DERMAUDIT_TASK_LEASE_SECONDS; work whose lease ran
# out is re-enqueued by any worker, every DERMAUDIT_RECOVERY_INTERVAL_SECONDS (0: only at worker start-up) and by
# `manage.py resume_audits`. A worker restarted under the same name (-n) takes back its own work at start-up.
DERMAUDIT_TASK_LEASE_SECONDS = float(os.environ.get("DERMAUDIT_TASK_LEASE_SECONDS", 300))
DERMAUDIT_RECOVERY_INTERVAL_SECONDS = float(os.environ.get("DERMAUDIT_RECOVERY_INTERVAL_SECONDS", 60))
DERMAUDIT_MAX_CHUNK_ATTEMPTS = int(os.environ.get("DERMAUDIT_MAX_CHUNK_ATTEMPTS", 5))
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacknowledged message of a dead worker to another one only after this many seconds (kombu's
    # default is 1 h). A task running longer than this is delivered twice; the leases make the copy a no-op.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("DERMAUDIT_BROKER_VISIBILITY_TIMEOUT", 3600)),
    }
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Broker-less real workers (used by tests under the embedded default): kombu's file transport.
    _queue_dir = Path(os.environ.get("CELERY_FILESYSTEM_QUEUE", VAR_DIR / "celery-queue"))
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir), "data_folder_out": str(_queue_dir), "control_folder": str(_queue_dir / "control"),
    }

# --- auth, API ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"login": os.environ.get("DERMAUDIT_LOGIN_RATE", "10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DermAudit API",
    "DESCRIPTION": "Audits and validates synthetic dermatology images.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Error answers (400/401/403/404) are documented too: auditor/api/schema.py.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "auditor.api.schema.document_error_responses"],
    "ENUM_NAME_OVERRIDES": {
        "ImageSetKindEnum": "auditor.models.core.ImageSet.Kind",
        "GeneratorKindEnum": "auditor.models.training.GeneratorRun.Kind",
        "TrainingStatusEnum": "auditor.models.training.TrainingStatus",  # generator and detector runs share it
    },
    # Swagger UI served from our own static files: hospitals often have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The audit trail (django-auditlog, auditor/models/trail.py): old and new values kept as JSON (numbers stay numbers).
AUDITLOG_STORE_JSON_CHANGES = True

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("REDIS_CACHE_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_CACHE_URL"]}}

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- security (production) ------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DERMAUDIT_LOG_LEVEL", "WARNING")},
}
