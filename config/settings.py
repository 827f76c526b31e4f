"""Dossier settings: one env-driven file.

Every variable is optional. With none set, Dossier runs on an embedded default: SQLite
under ``var/``, django-q2's ORM broker, files under ``var/media/`` and emails written to
``var/mail/``. See the README's configuration table.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from config.logs import LOG_FORMATS, logging_config

# Lets runtime code write ModelForm[Case], QuerySet[Case]… as the type checker reads them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DOSSIER_VERSION = "0.1.0"

# --- Core -------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET = "django-insecure-dossier-development-key-do-not-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
if not DEBUG:
    _missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not value]
    if _missing:
        raise ImproperlyConfigured(f"DEBUG=False needs {' and '.join(_missing)} set in the environment.")
SECRET_KEY = SECRET_KEY or _DEV_SECRET
# The key stored secrets (ZIP passphrases) are encrypted with; derived from SECRET_KEY when unset.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]", "testserver"]

SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Origins allowed to POST forms besides SITE_URL (scheme included: https://reports.example.com).
CSRF_TRUSTED_ORIGINS = list(dict.fromkeys([SITE_URL, *env.list("CSRF_TRUSTED_ORIGINS", default=[])]))

INSTALLED_APPS = [
    "workspace.apps.DossierAdminConfig",  # Django's admin, with the workspace as its index
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "ops",  # before django_q: its qcluster command stops cleanly on a process-group signal
    "django_q",
    "audit",
    "organizations",
    "cases",
    "tagging",
    "exports",
    "scheduling",
    "workspace",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------

DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)  # the embedded default lives in var/, absent on a fresh clone
    # runserver, the qcluster workers and the scheduler share one file: WAL lets readers
    # work beside a writer, IMMEDIATE transactions take the write lock up front (no
    # "database is locked" on lock upgrade) and the timeout waits for it instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Security ---------------------------------------------------------------------------
# DEBUG=False means production: served over HTTPS, normally behind a TLS-terminating proxy.

# The proxy tells the app a request came over HTTPS in a header it sets to "https"
# (SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto). Opt-in: trusting it when clients can reach
# the app directly would let them claim HTTPS. gunicorn's FORWARDED_ALLOW_IPS does the same
# for the Procfile's web process.
_proxy_header = env.str("SECURE_PROXY_SSL_HEADER", default="").strip().upper().replace("-", "_")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = (_proxy_header if _proxy_header.startswith("HTTP_") else f"HTTP_{_proxy_header}", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe the health endpoint over plain HTTP; a redirect would read as down.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$"]
# Browsers remember HSTS for this long; 0 sends no header. The include-subdomains default
# assumes Dossier has a host name of its own (reports.example.com); preload is a
# commitment for a whole registered domain, made by its owner, so it stays opt-in.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# check --deploy asks for preload (security.W021); that is the domain owner's decision above.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# whitenoise serves static files from the apps' own folders (found at start-up, as
# runserver finds them), so no collectstatic step is needed: the release phase only
# migrates. Files are served with a short max-age because their names are not hashed;
# the admin's few files make that cheap. A collectstatic run into STATIC_ROOT is served too.
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):  # whitenoise warns at every start while STATIC_ROOT is missing
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))


def _exports_storage(url: str) -> dict[str, Any]:
    """Translate ``EXPORTS_STORAGE`` into a ``STORAGES`` entry."""
    if not url:
        return {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(MEDIA_ROOT / "exports"), "base_url": None},
        }
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ImproperlyConfigured(f"EXPORTS_STORAGE must look like s3://bucket/prefix, not {url!r}.")
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": parsed.netloc,
            "location": parsed.path.strip("/"),
            # Never overwrite: every export gets a server-generated key of its own.
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            # With a custom domain (and no CloudFront key) django-storages returns unsigned,
            # never-expiring URLs from url().
            "custom_domain": None,
        },
    }


EXPORTS_STORAGE = env.str("EXPORTS_STORAGE", default="")
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "exports": _exports_storage(EXPORTS_STORAGE),
}

# A worker renews its claim on a job every few seconds; a claim not renewed for this long
# means the worker died, and the job is handed out again (at most EXPORT_MAX_ATTEMPTS times).
EXPORT_LEASE_SECONDS = env.int("EXPORT_LEASE_SECONDS", default=120)
EXPORT_MAX_ATTEMPTS = env.int("EXPORT_MAX_ATTEMPTS", default=3)
# Exports of one organization processing at once; the others wait their turn, oldest first.
EXPORT_MAX_CONCURRENT_PER_ORG = env.int("EXPORT_MAX_CONCURRENT_PER_ORG", default=2)
# On PostgreSQL, CSV, JSONL, Parquet and XLSX exports are rendered in SQL and streamed by
# COPY (the same files as the Python path; docs/performance.md); False forces the Python path.
EXPORT_SQL_PUSHDOWN = env.bool("EXPORT_SQL_PUSHDOWN", default=True)
# A pushed-down export reads its parts (25,000 rows each) on this many connections at once.
EXPORT_COPY_CONNECTIONS = env.int("EXPORT_COPY_CONNECTIONS", default=2)
# On SQLite, an export of 20,000 rows or more is written by this many processes at once (forked,
# each a part of the rows); 1 writes every export in the worker's own process.
EXPORT_PROCESSES = env.int("EXPORT_PROCESSES", default=2)
# Where a worker writes an export (its file, its parts, its XLSX sheets) before storage
# takes it; empty: the system's temporary folder (TMPDIR).
EXPORTS_TMP_DIR = env.str("EXPORTS_TMP_DIR", default="")

_retention = env.int("EXPORT_RETENTION_HOURS", default=0)
# One variable, two defaults: when set it applies to on-demand and scheduled exports alike.
EXPORT_RETENTION_HOURS = _retention or 24
EXPORT_RETENTION_HOURS_SCHEDULED = _retention or 168

# --- Email ------------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="reports@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_MAX_ATTACHMENT_MB = env.float("EMAIL_MAX_ATTACHMENT_MB", default=10)
# Django's default is None: a dead SMTP server would block a worker forever.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

_email_url = env.str("EMAIL_URL", default="")
if not _email_url:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
elif _email_url.startswith("console:"):
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    try:
        _email = environ.Env.email_url_config(_email_url)
    except Exception as exc:  # django-environ raises bare errors for unknown schemes
        raise ImproperlyConfigured(f"EMAIL_URL is not a supported email URL: {exc}") from exc
    globals().update({key: value for key, value in _email.items() if value is not None})

# --- Task queue (django-q2) -------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")

# django-q2: with the ORM broker a task is redelivered `retry` seconds after it was taken,
# so timeout < retry (a task is redelivered only after it surely stopped); max_attempts
# defaults to 0 (for ever), so it is finite here; catch_up would replay every missed slot
# (the dispatcher coalesces them itself). Idempotency and recovery live in our own tables.
Q_CLUSTER: dict[str, Any] = {
    "name": "dossier",
    "workers": env.int("Q_WORKERS", default=2),
    # A worker is replaced after this many tasks, or after a task that took its peak memory
    # past Q_MAX_RSS_KB (an XLSX of a million rows, a long PDF); 0 turns the memory check off.
    "recycle": env.int("Q_RECYCLE", default=200),
    "max_rss": env.int("Q_MAX_RSS_KB", default=1_048_576) or None,
    "timeout": 1800,
    "retry": 2100,
    "max_attempts": 3,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    # Tasks a cluster takes from the broker ahead of its workers. Kept to one per worker:
    # Redis delivers at most once, so what a killed cluster had taken is lost (the sweeps
    # queue it again), and tasks left on the broker go to whichever cluster is free first.
    "queue_limit": env.int("Q_QUEUE_LIMIT", default=env.int("Q_WORKERS", default=2)),
    "label": "Task queue",
    "poll": 1,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- API --------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dossier API",
    "DESCRIPTION": "Tag slots, export jobs and scheduled reports, scoped by organization.",
    "VERSION": DOSSIER_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Logging ----------------------------------------------------------------------------

# text: plain lines on stderr; json: one JSON object per line on stdout, with the
# organization, job, run, schedule or task the line was written for (config/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {LOG_FORMAT!r}.")
LOGGING = logging_config(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))
