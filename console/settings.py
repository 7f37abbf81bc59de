"""Gatehouse settings: one module, every knob read from the environment with an embedded default.

The defaults give a server-less install (SQLite + a SQLite-backed Celery broker under ``var/``).
Production switches to PostgreSQL and Redis with ``DATABASE_URL`` and ``CELERY_BROKER_URL``.
A bad value stops start-up with one line naming the variable (see ``_config_error``).
"""

import logging
import math
import os
import re
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _config_error(variable: str, problem: str) -> None:
    # One clear line, no traceback: an operator mistyped an environment variable.
    raise SystemExit(f"Gatehouse configuration error: {variable} {problem}")


# What django-environ reads as true, and the usual false words; anything else is refused
# (django-environ read "maybe" or "ture" as false). Set but empty is false, as it was.
_TRUE = ("1", "true", "yes", "y", "on", "ok")
_FALSE = ("0", "false", "no", "n", "off", "")


def _bool(variable: str, default: bool) -> bool:
    if variable not in os.environ:
        return default
    raw = os.environ[variable].strip().lower()
    if raw not in _TRUE + _FALSE:
        _config_error(variable, f"must be true or false, got {os.environ[variable]!r}")
    return raw in _TRUE


def _number(variable: str, default, kind=int, *, minimum=None, maximum=None, above=None):
    """``minimum``/``maximum``: bounds it may equal; ``above``: one it must exceed."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):  # a word, NaN, infinity
        noun = "a whole number" if kind is int else "a number"
        _config_error(variable, f"must be {noun}, got {os.environ[variable]!r}")
    if minimum is not None and value < minimum:
        _config_error(variable, f"must be {minimum} or more, got {raw}")
    if above is not None and not value > above:
        _config_error(variable, f"must be more than {above}, got {raw}")
    if maximum is not None and value > maximum:
        _config_error(variable, f"must be {maximum} or less, got {raw}")
    return value


VAR_DIR = Path(env.str("GATEHOUSE_VAR_DIR", default=str(BASE_DIR / "var")))
try:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    _config_error("GATEHOUSE_VAR_DIR", f"cannot be created: {exc.strerror}")


def _generated_secret(filename: str) -> str:
    """A random secret generated once into var/ (never committed), read back on later starts."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = _bool("DEBUG", False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _generated_secret("secret_key")
# Keys the HMAC-SHA-256 digests of SCIM credentials. Separate from SECRET_KEY so rotating the
# session key does not invalidate every identity provider's secret.
GATEHOUSE_CREDENTIAL_KEY = env.str(
    "GATEHOUSE_CREDENTIAL_KEY", default=""
).strip() or _generated_secret("credential_key")

# Unset, the console's own address: `PORT=9000 make run` prints base URLs on port 9000.
PORT = _number("PORT", 8000, minimum=1, maximum=65535)  # where serve listens (--port)
GATEHOUSE_BASE_URL = env.str("GATEHOUSE_BASE_URL", default=f"http://localhost:{PORT}").rstrip("/")
# Not configured (a first run, a test machine): SCIM answers name the scheme and host each
# request came to (its Host header, checked against ALLOWED_HOSTS, and X-Forwarded-Proto) in
# Location, meta.location and $ref, so a client at http://127.0.0.1:8000 is not sent to
# localhost. Configured, the public URL wins (behind a proxy that rewrites the host).
GATEHOUSE_BASE_URL_FROM_REQUEST = "GATEHOUSE_BASE_URL" not in os.environ
_base = urlsplit(GATEHOUSE_BASE_URL)
if _base.scheme not in ("http", "https") or not _base.hostname:
    _config_error("GATEHOUSE_BASE_URL", f"must be an http(s) URL, got {GATEHOUSE_BASE_URL!r}")
if _base.query or _base.fragment or "?" in GATEHOUSE_BASE_URL or "#" in GATEHOUSE_BASE_URL:
    # SCIM base URLs are written after it: a query or fragment would swallow them.
    _config_error("GATEHOUSE_BASE_URL", f"cannot hold a query or fragment: {GATEHOUSE_BASE_URL!r}")
try:
    _base.port  # noqa: B018 - urlsplit checks the port only when asked
except ValueError:
    _config_error("GATEHOUSE_BASE_URL", f"has a bad port: {GATEHOUSE_BASE_URL!r}")
GATEHOUSE_HOST = _base.hostname
HTTPS = _base.scheme == "https"

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver", GATEHOUSE_HOST]
)
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_scim",
    "console",
    "identity",
    "provisioning",
    "synclog",
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

# The SCIM service's chain (console/wsgi.py): no cookies, no HTML, no static files there.
# CommonMiddleware stays: it sets Content-Length, without which the server sends a page chunked
# and a client spends milliseconds reassembling it.
SCIM_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "console.middleware.no_length_without_content",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

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
            ]
        },
    }
]

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "gatehouse.sqlite3"
_SUPPORTED_DATABASES = ("sqlite", "postgres", "postgresql", "pgsql", "postgis")
_database_url = env.str("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")
if urlsplit(_database_url).scheme not in _SUPPORTED_DATABASES:
    _config_error(
        "DATABASE_URL",
        f"is not a sqlite:// or postgres:// URL: {_database_url.split('@')[-1]!r}",
    )
try:
    _database = environ.Env.db_url_config(_database_url)
except Exception as exc:  # django-environ raises several types for malformed URLs
    _config_error("DATABASE_URL", f"cannot be parsed ({exc.__class__.__name__})")
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # PRODUCT.md: the embedded SQLite takes concurrent IdP pushes, console and worker at once.
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing with "database is locked".
    # mmap_size: reads come straight from the OS page cache instead of a read() call per
    # page; at 100,000 users the database (~55 MB) is far over SQLite's default 2 MB page cache,
    # and a create touches a dozen index pages at random places (bench/scim_load.py: creates
    # 343 → 382/s). It maps, it does not reserve: memory is the OS's file cache either way.
    _database["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=268435456;"
        ),
    }
    _database["TEST"] = {"NAME": str(VAR_DIR / "test-gatehouse.sqlite3")}
    # Django's backend, remembering its %s → ? rewrite per statement (console/sqlite3/base.py).
    _database["ENGINE"] = "console.sqlite3"
elif _database["ENGINE"] == "django.db.backends.postgresql":  # not PostGIS: left as it is
    # Django's backend with a health check that polls the socket instead of running
    # SELECT 1 on every request (console/postgresql/base.py).
    _database["ENGINE"] = "console.postgresql"
_on_sqlite = _database["ENGINE"] == "console.sqlite3"
_prepared_statements = _bool("DATABASE_PREPARED_STATEMENTS", True)  # checked on both
if not _on_sqlite and _prepared_statements:
    # PostgreSQL: bind parameters on the server and let psycopg prepare a statement the
    # connection has run five times, so the SCIM service's repeated queries skip parsing and
    # planning (planning a page's query cost as much as running it). Turn it off behind a
    # connection pooler in transaction mode (PgBouncer before 1.21), which cannot keep
    # prepared statements.
    _database.setdefault("OPTIONS", {}).update(
        {"server_side_binding": True, "prepare_threshold": 5}
    )
# Persistent connections on both engines: opening SQLite per request (its PRAGMAs and
# Django's function registrations) cost more than a whole SCIM lookup.
_database["CONN_MAX_AGE"] = _number("DATABASE_CONN_MAX_AGE", 60, minimum=0)
_database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}

# Web server processes and threads (``manage.py serve``, bench/scim_load.py). On SQLite one
# thread per process: Django's connections are per thread, and SQLite drops a connection's page
# cache whenever another connection has written, so threads taking turns on one keep-alive
# connection re-read their pages on every write (a SCIM PATCH took two to three times longer
# with 4 threads). PostgreSQL keeps its cache in the server: threads are cheap there.
GATEHOUSE_WEB_WORKERS = _number("GATEHOUSE_WEB_WORKERS", 4 if _on_sqlite else 2, minimum=1)
GATEHOUSE_WEB_THREADS = _number("GATEHOUSE_WEB_THREADS", 1 if _on_sqlite else 4, minimum=1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ---------------------------------------------------------------------------------
_SUPPORTED_BROKERS = ("sqla+sqlite", "redis", "rediss", "amqp", "memory")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR}/broker.sqlite3")
if urlsplit(CELERY_BROKER_URL).scheme not in _SUPPORTED_BROKERS:
    _config_error(
        "CELERY_BROKER_URL",
        f"has an unknown scheme {urlsplit(CELERY_BROKER_URL).scheme!r} "
        f"(use one of: {', '.join(_SUPPORTED_BROKERS)})",
    )
_default_results = (
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis", "rediss"))
    else f"db+sqlite:///{VAR_DIR}/results.sqlite3"
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=_default_results)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task killed mid-run is redelivered; tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# identity/tasks.py: the deprovisioning schedule lives in the database; beat sweeps it.
GATEHOUSE_DEACTIVATION_SWEEP_SECONDS = _number(
    "GATEHOUSE_DEACTIVATION_SWEEP_SECONDS", 60.0, float, minimum=0.1
)
GATEHOUSE_DEACTIVATION_BATCH_SIZE = _number("GATEHOUSE_DEACTIVATION_BATCH_SIZE", 500, minimum=1)
CELERY_BEAT_SCHEDULE: dict = {
    "run-due-deactivations": {
        "task": "identity.tasks.run_due_deactivations",
        "schedule": GATEHOUSE_DEACTIVATION_SWEEP_SECONDS,
        # A stale tick is useless (the next one sweeps everything due): don't let them pile up
        # in the broker while no worker runs. Not under 30 s, though: a tick that expires
        # before a busy worker takes it is a sweep that never runs.
        "options": {"expires": max(GATEHOUSE_DEACTIVATION_SWEEP_SECONDS, 30)},
    },
    # synclog/tasks.py: PRODUCT.md "Sync log" retention, purged daily.
    "purge-expired-sync-log": {
        "task": "synclog.tasks.purge_expired_sync_log",
        "schedule": 24 * 60 * 60,
        "options": {"expires": 60 * 60},
    },
}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "identity.User"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Static, i18n, security -----------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise serves from finders too; it wants the dir
WHITENOISE_USE_FINDERS = True  # the default run serves static files without collectstatic
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and _bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = _number("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").strip().upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    _config_error(
        "LOG_LEVEL", f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "filters": {
        "pipeline_aborted_echo": {"()": "console.log_filters.PipelineAbortedEcho"},
        "one_line_disallowed_host": {"()": "console.log_filters.OneLineDisallowedHost"},
    },
    "loggers": {
        "psycopg": {"filters": ["pipeline_aborted_echo"]},
        "django.security.DisallowedHost": {"filters": ["one_line_disallowed_host"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Product knobs --------------------------------------------------------------------------
GATEHOUSE_DEFAULT_DEACTIVATION_DELAY = timedelta(minutes=15)
GATEHOUSE_MAX_DEACTIVATION_DELAY = timedelta(days=90)
# At least a day: 0 or less would put the purge's cutoff at or after now (every row gone).
GATEHOUSE_SYNC_LOG_RETENTION_DAYS = _number("GATEHOUSE_SYNC_LOG_RETENTION_DAYS", 90, minimum=1)
# Mass-deprovisioning guard: deactivations for a provider are held once it deprovisions more
# than max(SHARE x its users, MIN) users within an hour (docs/deprovisioning.md).
GATEHOUSE_GUARD_SHARE = _number("GATEHOUSE_GUARD_SHARE", 0.10, float, above=0, maximum=1)
GATEHOUSE_GUARD_MIN = _number("GATEHOUSE_GUARD_MIN", 500, minimum=0)
GATEHOUSE_GUARD_WINDOW = timedelta(hours=1)

if "pytest" in sys.modules:  # fast password hashing for the test suite only
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# auth.E003 wants ``unique=True`` on the username column; ours is unique case-insensitively by
# the ``Lower(username)`` constraint in identity.User.Meta, which is stricter.
SILENCED_SYSTEM_CHECKS = ["auth.E003"]

# --- SCIM service ---------------------------------------------------------------------------
# Per-provider request rate, DRF syntax ("10000/m"). Generous: IdPs burst on a first sync.
GATEHOUSE_SCIM_RATE_LIMIT = env.str("GATEHOUSE_SCIM_RATE_LIMIT", default="20000/m").strip()
if not re.fullmatch(r"[1-9][0-9]{0,8}/[smhd][a-z]*", GATEHOUSE_SCIM_RATE_LIMIT):  # as DRF reads
    # DRF would read it on the first request: a 500 on every SCIM call, /healthz still ok.
    _config_error(
        "GATEHOUSE_SCIM_RATE_LIMIT",
        f"must be requests per s, m, h or d, such as 20000/m; got {GATEHOUSE_SCIM_RATE_LIMIT!r}",
    )
GATEHOUSE_SCIM_MAX_RESULTS = 1000  # a list page never holds more (ServiceProviderConfig)
try:
    CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://gatehouse")}
except Exception as exc:  # django-environ: ImproperlyConfigured, or a parse error
    _config_error("CACHE_URL", f"is not a cache URL such as redis://host:6379/0 ({exc})")
REST_FRAMEWORK = {
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
}
