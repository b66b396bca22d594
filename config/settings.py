"""Settings, all read from the environment (see README "Configuration")."""

from pathlib import Path

import environ
from django.core.management.utils import get_random_secret_key
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=None)
if not SECRET_KEY and DEBUG:
    # A random development key, kept in var/ so that web, worker and beat (and every gunicorn worker) share it.
    _dev_key_file = BASE_DIR / "var" / "dev-secret-key"
    _dev_key_file.parent.mkdir(exist_ok=True)
    if not _dev_key_file.exists():
        _dev_key_file.write_text(get_random_secret_key())
    SECRET_KEY = _dev_key_file.read_text().strip()
if not SECRET_KEY:
    # In production a missing key must stop startup, not be invented.
    raise environ.ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")


def _env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated variable; "a.com, b.com" works, and set-but-empty means the default."""
    return [item.strip() for item in env.str(name, default="").split(",") if item.strip()] or default


def _env_str(name: str, default: str) -> str:
    """A variable that is unset or set to "" both mean the default (a blank line in an .env file, say)."""
    return env.str(name, default="") or default


ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])
# Behind an HTTPS proxy that sets X-Forwarded-Proto (and strips any the client sent): links the app makes (report
# share links) and secure-only checks then see https.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

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
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files: /api/docs/ works offline
    "django_celery_beat",
    "django_celery_results",
    "accounts",
    "jobs",
    "notifications",
    "reports",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobs.middleware.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "jobs.middleware.SlashRedirectMiddleware",  # CommonMiddleware, redirecting with 308 so a POST stays a POST
    "jobs.middleware.ApiNotFoundMiddleware",  # inside CommonMiddleware, which may turn its 404 into a slash redirect
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "jobs.exceptions.DatabaseUnavailableMiddleware",  # a 503 for views outside DRF while the database is away
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url_config(_env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE transactions take the
    # write lock up front (no "database is locked" on upgrade), and the timeout waits for it instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
    # The test database must be a file too: the in-process test worker runs in another thread.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a health check that needs no round trip (config/postgresql/base.py)
        DATABASES["default"]["ENGINE"] = "config.postgresql"
        # A server that falls silent (its host crashed, a network dropping packets) sends no reset: without these a
        # request waits on it until gunicorn kills the request at 30 s, and the client gets no answer. With them, a
        # new connection gives up after 5 s and a held one once what it sent goes unacknowledged for 10 s (or an idle
        # one fails its keepalive probes), and the request answers 503 (jobs/exceptions.py). A parameter in
        # DATABASE_URL's query string wins.
        DATABASES["default"]["OPTIONS"] = {
            "connect_timeout": 5,
            "tcp_user_timeout": 10_000,  # ms
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
            **DATABASES["default"].get("OPTIONS", {}),
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/reports/"
LOGOUT_REDIRECT_URL = "login"

# --- I18N / time ----------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Limits ---------------------------------------------------------------------------------------------------------
# Bodies over this answer 413 before any view runs (webhook providers send a few KiB; nothing here needs more).
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES

# --- Redis, cache -----------------------------------------------------------------------------------------------------
REDIS_URL = _env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Short timeouts: the cache holds throttle counters, and a slow Redis must not stall every request.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- REST framework ---------------------------------------------------------------------------------------------------
API_TENANT_RATE = env.str("API_TENANT_RATE", default="600/min")  # requests per tenant, all web processes together
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",  # DRF's scheme, read in one query; refuses NUL bytes
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsTenantMember"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.TenantRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["jobs.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "jobs.exceptions.api_exception_handler",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")
SPECTACULAR_SETTINGS = {
    "TITLE": "Background jobs API",
    "DESCRIPTION": "Accept work, answer at once with a task id, and report its progress.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The pinned copies drf-spectacular-sidecar ships, instead of the CDN's @latest.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The webhook endpoint is a plain Django view (it verifies the raw body), which drf-spectacular cannot see.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "webhooks.openapi.add_webhook_receive"],
}

# --- Email ------------------------------------------------------------------------------------------------------------
if _env_str("EMAIL_URL", ""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jobs@localhost")
# Transient SMTP failures: 3 retries, delays BASE·2^n shaved by up to 25 % jitter (30 s, 60 s, 120 s by default).
EMAIL_MAX_RETRIES = env.int("EMAIL_MAX_RETRIES", default=3)
EMAIL_RETRY_BASE_DELAY = env.float("EMAIL_RETRY_BASE_DELAY", default=30.0)
# Sending rates for all workers together, and for any one tenant (so one tenant's burst cannot starve the others).
# A send waits up to EMAIL_RATE_LIMIT_MAX_WAIT seconds for a slot, then goes back to the queue until its slot.
EMAIL_RATE_LIMIT = env.str("EMAIL_RATE_LIMIT", default="10/s")
EMAIL_TENANT_RATE_LIMIT = env.str("EMAIL_TENANT_RATE_LIMIT", default="5/s")
EMAIL_RATE_LIMIT_MAX_WAIT = env.float("EMAIL_RATE_LIMIT_MAX_WAIT", default=2.0)

# --- Celery -----------------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = _env_str("CELERY_BROKER_URL", REDIS_URL)
# Where publishes go: Celery's default is the broker URL too, but found by a lookup that misses every level of its
# settings first, about 19 µs on each job's publish (jobs.services._send) against 4 µs when it is set.
CELERY_BROKER_WRITE_URL = _env_str("CELERY_BROKER_WRITE_URL", CELERY_BROKER_URL)
CELERY_ACCEPT_CONTENT = ["json"]  # never unpickle what arrives on the broker
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_RESULT_BACKEND = "jobs.results:UpsertDatabaseBackend"  # django-db, one statement per state
CELERY_RESULT_EXTENDED = True  # task name, args and worker on the result row, for the admin and the status API
CELERY_RESULT_EXPIRES = None  # cleanup_old_logs prunes results by our own retention, in chunks
CELERY_TASK_TRACK_STARTED = True  # clients see STARTED instead of PENDING while a task runs
# Defaults for every task; tasks that should be quicker declare tighter limits of their own.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
# Acknowledge after the task ran, and give the message back if the worker process dies: a crash loses nothing.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With late acks a worker that holds many messages delays them all; take one at a time.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacked message after this long. It must exceed the longest time limit plus the longest retry
# countdown (ETA messages sit unacked in the worker), or a slow task would run twice.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=2 * 60 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
# When the broker connection drops, Redis will hand our unacked messages to another worker: stop the copies we are
# running instead of finishing them twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# In the web processes only (config/wsgi.py), shorter: a Redis that hangs (frozen, or a network dropping packets)
# rather than refusing must not hold an API request past gunicorn's 30 s timeout. A publish there gives up after two
# tries of at most 3 s each and leaves the job to the relay; the request answers 202, the job being committed. Workers
# and beat keep the longer ones: a retry's publish that fails there fails its job.
WEB_BROKER_SOCKET_TIMEOUT = env.float("WEB_BROKER_SOCKET_TIMEOUT", default=3)
WEB_PUBLISH_MAX_RETRIES = env.int("WEB_PUBLISH_MAX_RETRIES", default=1)
# Then, in the web processes too, a Redis that failed is not asked again for this long (the throttle lets requests
# through, the publish leaves jobs to the relay): a hung Redis costs one request its timeouts, not every request.
WEB_REDIS_BACKOFF_SECONDS = env.float("WEB_REDIS_BACKOFF_SECONDS", default=5)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("reports"), Queue("webhooks")]
CELERY_TASK_ROUTES = {
    "reports.*": {"queue": "reports"},
    "webhooks.*": {"queue": "webhooks"},
}
# Celery's Django fixup closes every database connection before and after each task unless this is set, so each task
# opened a new PostgreSQL connection (~a third of a short task's time). Workers keep them instead; jobs.tasks closes
# broken ones and those past CONN_MAX_AGE between tasks, as Django does between requests.
CELERY_DB_REUSE_MAX = 2**62
CELERY_WORKER_SEND_TASK_EVENTS = True  # lets Flower and queue_status see tasks
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "jobs.beat:SingleBeatScheduler"  # DatabaseScheduler that only one beat at a time may drive
CELERY_BEAT_SYNC_EVERY = 1  # save each entry's last run as soon as it is sent, so a beat taking over does not repeat it
# A second beat takes over this long after the leader stopped renewing its lock.
JOBS_BEAT_LOCK_SECONDS = env.int("JOBS_BEAT_LOCK_SECONDS", default=30)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"  # the console email backend prints messages; they are not warnings

# The relay publishes jobs whose after-commit publish failed (broker down). It leaves younger jobs alone: their
# own publish may still be in flight.
JOBS_RELAY_GRACE_SECONDS = env.int("JOBS_RELAY_GRACE_SECONDS", default=5)
JOBS_RELAY_INTERVAL_SECONDS = env.int("JOBS_RELAY_INTERVAL_SECONDS", default=10)
IDEMPOTENCY_KEY_TTL_HOURS = 24
# The sweeper republishes accepted jobs that no queue and no live worker holds (a dead worker, a Redis that lost its
# data). A job must look stranded on two sweeps at least GRACE seconds apart, so recovery takes at most about
# 2 × JOBS_SWEEP_INTERVAL_SECONDS + GRACE after the loss. Jobs older than the window are left to the operator.
JOBS_SWEEP_INTERVAL_SECONDS = env.int("JOBS_SWEEP_INTERVAL_SECONDS", default=30)
JOBS_SWEEP_GRACE_SECONDS = env.int("JOBS_SWEEP_GRACE_SECONDS", default=30)
JOBS_SWEEP_WINDOW_HOURS = env.int("JOBS_SWEEP_WINDOW_HOURS", default=24)
JOBS_SWEEP_INSPECT_TIMEOUT = env.float("JOBS_SWEEP_INSPECT_TIMEOUT", default=2.0)
# Starts beyond the expected ones (one per retry) mean the worker died running the job; after this many it is failed.
JOBS_MAX_CRASH_REDELIVERIES = env.int("JOBS_MAX_CRASH_REDELIVERIES", default=3)
# A job that finds the database down retries: 5 s, 10 s, 20 s … (capped at 5 min), 8 times — about 20 minutes.
JOBS_DB_RETRY_BASE_DELAY = env.float("JOBS_DB_RETRY_BASE_DELAY", default=5.0)
JOBS_DB_MAX_RETRIES = env.int("JOBS_DB_MAX_RETRIES", default=8)
# Web processes keep the user behind each API token and each task's status in memory, dropped when a writer publishes
# an invalidation (jobs.localcache); this is the longest an entry lives if a write somehow bypasses that. 0: no cache.
JOBS_LOCAL_CACHE_SECONDS = env.int("JOBS_LOCAL_CACHE_SECONDS", default=30)
# PostgreSQL: the enqueue's insert is a prepared statement on each connection (jobs.sql.prepared_cursor). Turn it off
# behind a pooler in transaction mode that does not keep prepared statements (PgBouncer before 1.22).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)

# --- Logging ----------------------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"mail.log": {"level": "WARNING"}},  # aiosmtpd, in tests and local SMTP sinks
}

# --- hostile input ---
# JSON nested too deeply answers 400 instead of a RecursionError (jobs.parsers.JSONParser, in REST_FRAMEWORK above).
# A session cookie that cannot be a session key (a NUL byte, say) means no session, instead of a database error.
SESSION_ENGINE = "accounts.sessions"
