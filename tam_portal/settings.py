"""tam-portal settings: one module, read from environment variables.

Development defaults exist only where they are safe: with DEBUG off (the default) the
portal refuses to start without SECRET_KEY and ALLOWED_HOSTS. `scripts/run.sh` writes
DEBUG=true (and the address it serves) to DATA_DIR/.env for the embedded default (SQLite,
in-process Celery, keys in ./data); see "the embedded default's .env" below.

Secrets may be given as NAME or, preferably, as NAME_FILE (a path to a file holding it).
"""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Test mode is chosen explicitly: the pytest configuration sets TAM_TEST_MODE=1 (pyproject.toml
# loads tests/test_mode.py), never inferred from what is imported. It relaxes what the suite
# needs relaxed (second factor enforcement, HTTPS redirect, HSTS, secure cookies); a production
# process never sets it.
TESTING = env.bool("TAM_TEST_MODE", default=False)


def env_secret(name: str, default: str | None = None) -> str | None:
    """NAME_FILE beats NAME; neither ever gets logged."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


# The data folder holds what the embedded default creates on first start: the SQLite
# database, development TAM keys, uploaded binaries. It is ignored by git.
DATA_DIR = Path(env("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()

# The embedded default's .env: scripts/run.sh writes its choices (DEBUG=true, BIND,
# TAM_PUBLIC_BASE_URL) to DATA_DIR/.env, so every later `manage.py` in any shell agrees with
# the server it started. A variable of the process environment always wins over the file;
# DEBUG=false in the environment (production) ignores the file; the test suite never reads it.
DATA_ENV_FILE = DATA_DIR / ".env"
if (
    not TESTING
    and DATA_ENV_FILE.is_file()
    and env.bool("DEBUG", default=True)  # unset, or not explicitly false
):
    environ.Env.read_env(DATA_ENV_FILE, overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        from tam_portal.devkeys import development_secret_key

        SECRET_KEY = development_secret_key(DATA_DIR)
    else:
        hint = "" if DATA_ENV_FILE.is_file() else (
            f" (for the embedded default, run ./scripts/run.sh once: it writes DEBUG=true to"
            f" {DATA_ENV_FILE})"
        )
        raise ImproperlyConfigured(
            f"SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off{hint}"
        )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if (DEBUG or TESTING) else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_otp",
    "apps.accounts.totp_app.TotpDevicesConfig",  # django_otp.plugins.otp_totp, named for people
    "django_otp.plugins.otp_static",  # TOTP backup codes
    "apps.audit",
    "apps.components",
    "apps.personalization",
    "apps.devices",
    "apps.policies",
    "apps.teep",
    "apps.tam",
    "apps.agent",
    "apps.attestation",
    "apps.api",
    "apps.accounts",
    "apps.dashboard",
    "apps.ops",
]

MIDDLEWARE = [
    # First: a request id for the logs; then /healthz, /readyz, /metrics, answered before host
    # validation and the HTTPS redirect (probes reach each process by address, apps/ops).
    "apps.ops.middleware.RequestIdMiddleware",
    "apps.ops.middleware.OpsEndpointsMiddleware",
    # Before Django's host validation: TEEP_ALLOWED_HOSTS on the TEEP paths, refusals recorded.
    "apps.tam.middleware.TeepHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # TEEP requests stop here and go to the TEEP view: what follows serves the portal's pages.
    "apps.tam.middleware.TeepLaneMiddleware",
    "apps.ops.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tam_portal.urls"

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

WSGI_APPLICATION = "tam_portal.wsgi.application"

# --- Database -------------------------------------------------------------------------
# PostgreSQL in production and CI (DATABASE_URL=postgres://...); SQLite in ./data only as
# the embedded default for a bare machine.
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'tam_portal.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with bulk statements split under PostgreSQL's 65,535 parameters.
    DATABASES["default"]["ENGINE"] = "tam_portal.db_backend"
    DATABASES["default"].setdefault("OPTIONS", {})
    # Nothing waits forever: a stuck lock or query fails fast (ENGINEERING.md 3.4).
    DATABASES["default"]["OPTIONS"].setdefault(
        "options",
        "-c statement_timeout=30000 -c lock_timeout=5000 "
        "-c idle_in_transaction_session_timeout=60000",
    )
    # An unreachable server fails in seconds (then 503, apps/ops/faults.py), not after the
    # TCP timeout; `?connect_timeout=N` in DATABASE_URL overrides it.
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
    # Persistent connections (a new one per request costs more than a whole policy check).
    # Not checked before reuse by default: the check is a round trip on every request; a
    # connection the server dropped costs the one request that finds it a 503 with
    # Retry-After (apps/ops/faults.py), and Django then opens a new one.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)
    # Server-side parameter binding (psycopg 3 sends values apart from the statement) ...
    DATABASES["default"]["OPTIONS"].setdefault(
        "server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=True)
    )
    # ... so that a statement run DATABASE_PREPARE_THRESHOLD times on a connection is prepared
    # and PostgreSQL stops planning the policy check's statements (issue 11). Django leaves
    # preparing off unless told. Behind pgbouncer in transaction mode: 1.21+ with
    # max_prepared_statements, or DATABASE_PREPARE_THRESHOLD=0.
    prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    if DATABASES["default"]["OPTIONS"]["server_side_binding"] and prepare_threshold > 0:
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", prepare_threshold)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: writers queue instead of failing, readers never block writers.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rate limits live in the cache: it must be shared (Redis) when several processes serve.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # An unreachable Redis fails in a second (rate limits then fail open, apps/tam/ratelimit.py)
    # instead of holding the request; options in CACHE_URL's query override these.
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", 1)
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", 1)

# --- Authentication (README "Roles"; ENGINEERING.md 3.2 V6) ---------------------------------
AUTHENTICATION_BACKENDS = [
    # First: refuses any login attempt while the user/source is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# django-axes: lock a user name from one source after AXES_FAILURE_LIMIT wrong passwords,
# for AXES_COOLOFF_MINUTES. Attempts live in the database (shared by every process).
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The source address is REMOTE_ADDR, or the proxy's X-Forwarded-For behind BEHIND_TLS_PROXY.
# CLIENT_IP_PROXY_COUNT: the proxies in front that append to X-Forwarded-For; the client is
# the address the nearest one saw (apps/ops/clientip.py: TEEP rate limits, audit rows).
CLIENT_IP_PROXY_COUNT = 0
if env.bool("BEHIND_TLS_PROXY", default=False):
    CLIENT_IP_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=1)
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    AXES_IPWARE_PROXY_COUNT = CLIENT_IP_PROXY_COUNT
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)
# TOTP second factor (django-otp): required for superusers and the roles listed in
# apps/accounts/roles.py (security officer, administrator), optional for everybody else.
# Only the test suite turns enforcement off by default (its admin tests use force_login);
# the tests of the second factor turn it back on.
OTP_ENFORCED = env.bool("OTP_ENFORCED", default=not TESTING)
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="tam-portal")
# Nobody reads a user's TOTP key or backup codes in the admin (they are shown to the user once).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
LOGIN_URL = "admin:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media"))))},
    },
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (production values are the defaults; DEBUG relaxes only transport) -------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not (DEBUG or TESTING))
# TEEP/HTTP allows plain HTTP for constrained agents relying on COSE (otrp-over-http 4).
SECURE_REDIRECT_EXEMPT = [r"^tam"] if env.bool("TEEP_ALLOW_PLAIN_HTTP", default=False) else []
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if (DEBUG or TESTING) else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Decision: the portal is HTTPS-only for browsers, so it may join the preload list (agents are
# not browsers; TEEP_ALLOW_PLAIN_HTTP still exempts /tam from the redirect).
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not (DEBUG or TESTING))
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not (DEBUG or TESTING)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = 8 * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
X_FRAME_OPTIONS = "DENY"
# Portal pages (admin, accounts, API docs) run only our own scripts: the admin has no inline
# script, the Swagger UI loads its initializer as a file (SpectacularSwaggerSplitView).
# Inline styles stay allowed (the admin, the dashboard's SVG charts and the TOTP page use
# style attributes). The TEEP endpoint sends its own default-src 'none'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
TA_UPLOAD_MAX_BYTES = env.int("TA_UPLOAD_MAX_BYTES", default=64 << 20)
# Largest CSV export of the audit trail from the admin (the filtered list, streamed).
AUDIT_EXPORT_MAX_ROWS = env.int("AUDIT_EXPORT_MAX_ROWS", default=100_000)

# --- TEEP / TAM ------------------------------------------------------------------------
# TAM signing keys: PEM files (P-256 or Ed25519 private keys), the first one signs.
# Several may be listed for rotation; every listed key is published by `tam_keys export`.
# With DEBUG on and nothing configured, development keys are created in DATA_DIR/keys.
TAM_KEY_DIR = Path(env("TAM_KEY_DIR", default=str(DATA_DIR / "keys")))
TAM_SIGNING_KEY_FILES = env.list("TAM_SIGNING_KEY_FILES", default=[])
TAM_GENERATE_DEVELOPMENT_KEYS = env.bool(
    "TAM_GENERATE_DEVELOPMENT_KEYS", default=DEBUG or TESTING
)
# Key(s) that encrypt personalization data at rest (AES-256-GCM): files holding 32 bytes, raw
# or base64; comma-separated for rotation, the first encrypts and every one decrypts. With
# TAM_GENERATE_DEVELOPMENT_KEYS and nothing configured, one is created in TAM_KEY_DIR.
TAM_DATA_ENCRYPTION_KEY_FILE = env.list("TAM_DATA_ENCRYPTION_KEY_FILE", default=[])
TEEP_MAX_BODY_BYTES = env.int("TEEP_MAX_BODY_BYTES", default=1 << 20)
# A body above TEEP_MAX_BODY_BYTES is read and thrown away up to this many bytes before the 413,
# so a client that writes its whole body first sees the answer, not a reset connection; beyond
# it the 413 goes out at once (apps/tam/request_body.py).
TEEP_DISCARD_BODY_BYTES = env.int("TEEP_DISCARD_BODY_BYTES", default=8 * TEEP_MAX_BODY_BYTES)
# Host headers admitted on the TEEP endpoints only, beside ALLOWED_HOSTS (agents in the field
# with a fixed Host, e.g. teep-device's "example.com"; "*" admits any). Never widens the
# admin, API or payload hosts (apps/tam/middleware.py).
TEEP_ALLOWED_HOSTS = env.list("TEEP_ALLOWED_HOSTS", default=[])
TEEP_TOKEN_LIFETIME_SECONDS = env.int("TEEP_TOKEN_LIFETIME_SECONDS", default=6 * 3600)
# After ERR_TEMPORARY_ERROR, nothing new is sent to the device for this long (TEEP 4.6).
TEEP_TEMPORARY_ERROR_BACKOFF_SECONDS = env.int("TEEP_TEMPORARY_ERROR_BACKOFF_SECONDS", default=300)
# The same version is offered to a device at most this many times after it failed.
TEEP_MAX_DELIVERY_FAILURES = env.int("TEEP_MAX_DELIVERY_FAILURES", default=3)
# Per-source and per-device request limits (429 with Retry-After beyond them).
TEEP_RATE_LIMIT_PER_SOURCE = env("TEEP_RATE_LIMIT_PER_SOURCE", default="600/60")
TEEP_RATE_LIMIT_PER_DEVICE = env("TEEP_RATE_LIMIT_PER_DEVICE", default="60/60")
# Agents registered by hand skip attestation unless this is on (DESIGN.md bootstrap); unknown
# keys always attest.
TEEP_REQUIRE_ATTESTATION = env.bool("TEEP_REQUIRE_ATTESTATION", default=False)
# Compatibility profiles (apps/tam/compat.py, README "Serving older agents"): per endpoint, the
# suite of the first QueryRequest, e.g. "/tam/draft-25=es256" (libteep verifies only a
# COSE_Sign1 with ES256). Unset: a COSE_Sign with ESP256 and Ed25519 (TEEP 8.1) everywhere.
# Checked at startup (apps/tam/apps.py).
TEEP_FIRST_QUERY_SUITE = env("TEEP_FIRST_QUERY_SUITE", default="")
# A message without a kid is tried with the keys of devices registered as kid-less
# (apps/tam/identify.py), at most this many: beyond it such messages are refused, never
# scanned unboundedly. 0: no kid-less matching.
TEEP_KIDLESS_MAX_CANDIDATES = env.int("TEEP_KIDLESS_MAX_CANDIDATES", default=50)
if TEEP_KIDLESS_MAX_CANDIDATES < 0:
    raise ImproperlyConfigured("TEEP_KIDLESS_MAX_CANDIDATES must be 0 or more")
# --- Attestation (apps.attestation) ---
ATTESTATION_BACKEND = env("ATTESTATION_BACKEND", default="builtin")  # or "veraison"
ATTESTATION_VALIDITY_SECONDS = env.int("ATTESTATION_VALIDITY_SECONDS", default=24 * 3600)
ATTESTATION_REQUEST_DEADLINE_SECONDS = env.float("ATTESTATION_REQUEST_DEADLINE_SECONDS", default=3.0)
ATTESTATION_RESULT_MAX_AGE_SECONDS = env.int("ATTESTATION_RESULT_MAX_AGE_SECONDS", default=300)
VERAISON_BASE_URL = env("VERAISON_BASE_URL", default="")
VERAISON_EAR_PUBLIC_KEY_FILE = env("VERAISON_EAR_PUBLIC_KEY_FILE", default="")
VERAISON_CA_FILE = env("VERAISON_CA_FILE", default="")
VERAISON_TIMEOUT_SECONDS = env.float("VERAISON_TIMEOUT_SECONDS", default=10.0)
VERAISON_DEADLINE_SECONDS = env.float("VERAISON_DEADLINE_SECONDS", default=30.0)
# When an agent requires attestation of the TAM (ERR_ATTESTATION_REQUIRED, TEEP 7.1.2), the
# TAM answers with this payload (Evidence or an Attestation Result about the TAM) and format.
TAM_ATTESTATION_PAYLOAD_FILE = env("TAM_ATTESTATION_PAYLOAD_FILE", default="")
TAM_ATTESTATION_PAYLOAD_FORMAT = env("TAM_ATTESTATION_PAYLOAD_FORMAT", default="")
# Where devices fetch payloads from (payload URIs in the SUIT manifests the TAM builds).
TAM_PUBLIC_BASE_URL = env("TAM_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# The vendor domain whose UUID5 (SUIT manifest 8.4.8.3) is a new Trusted Component's default
# vendor id: by default the host of TAM_PUBLIC_BASE_URL.
TAM_VENDOR_DOMAIN = env("TAM_VENDOR_DOMAIN", default="") or (
    urlsplit(TAM_PUBLIC_BASE_URL).hostname or "localhost"
)

# --- Celery ----------------------------------------------------------------------------
# No broker configured = tasks run in-process (embedded default only).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Run exactly one `celery -A tam_portal beat` in production.
CELERY_BEAT_SCHEDULE = {
    "expire-unanswered-teep-requests": {
        "task": "apps.tam.tasks.expire_unanswered_requests",
        "schedule": 300.0,
    },
    # Delivered actions whose Update went unanswered go back to queued; stalled compromise
    # fan-outs (a lost on_commit publish, a killed worker) are resumed.
    "sweep-queued-actions": {
        "task": "apps.policies.tasks.sweep_queued_actions",
        "schedule": 60.0,
    },
    # Used attestation challenges older than any token can be forgotten.
    "purge-used-attestation-challenges": {
        "task": "apps.attestation.tasks.purge_used_challenges",
        "schedule": 24 * 3600.0,
    },
}

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    # Tokens first, so an anonymous API call is answered 401 with WWW-Authenticate: Token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.Pagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "tam-portal management API",
    "DESCRIPTION": "Devices, the catalogue, the audit trail. The TEEP endpoint (/tam) is not "
    "part of this API. Authenticate with `Authorization: Token …` or a logged-in session.",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "PREPROCESSING_HOOKS": ["apps.api.schema.management_api_only"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our static files (drf-spectacular-sidecar): no CDN, and no call to the
    # public validator (it would send the schema's URL away; CONTENT_SECURITY_POLICY blocks it).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "kind" field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "AuditEventKindEnum": "apps.audit.models.AuditEvent.Kind",
        "QueuedActionKindEnum": "apps.policies.models.QueuedAction.Kind",
        "DeliveryItemKindEnum": "apps.devices.models.DeliveryItem.Kind",
    },
}

# --- Operations: health, metrics (apps/ops; README "Operations") ---------------------------
# /metrics answers only when enabled; with a token, only `Authorization: Bearer <token>`.
# With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (read by prometheus-client).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_TOKEN = env_secret("METRICS_TOKEN", default="")
# Gauges the apps compute at scrape time (callables returning Prometheus metric families).
METRICS_COLLECTORS = ["apps.policies.metrics.compromise_fanout"]

# --- Logging: structured enough to grep; never message bodies, keys or tokens ----------
# LOG_FORMAT=json: one JSON object per line (time, level, logger, message, request_id).
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "apps.ops.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "apps.ops.logs.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # django-axes announces itself at every start (stderr of every management command).
    "loggers": {"axes.apps": {"level": "WARNING"}},
}
