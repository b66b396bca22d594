"""The webhooks app's settings: each read at call time from Django settings, else the environment, else a default.

Read at call time so that tests (and operators using ``settings`` overrides) change them without a restart.
"""

import environ
from django.conf import settings

env = environ.Env()

_UNSET = object()


def _setting(name: str, cast, default):
    value = getattr(settings, name, _UNSET)
    if value is not _UNSET:
        return value
    return cast(name, default=default)


# --- incoming webhooks ---


def webhooks_max_body_bytes() -> int:
    """Incoming webhook bodies over this answer 413 (stricter than REQUEST_BODY_MAX_BYTES: providers send a few KiB)."""
    return min(_setting("WEBHOOKS_MAX_BODY_BYTES", env.int, 64 * 1024), settings.REQUEST_BODY_MAX_BYTES)


def webhooks_timestamp_tolerance_seconds() -> int:
    """A webhook-timestamp further than this from now, either way, is refused (Standard Webhooks: 5 minutes)."""
    return _setting("WEBHOOKS_TIMESTAMP_TOLERANCE_SECONDS", env.int, 5 * 60)


def webhooks_secret_grace_hours() -> float:
    """After a rotation the previous secret keeps verifying this long, while the provider switches over."""
    return _setting("WEBHOOKS_SECRET_GRACE_HOURS", env.float, 24.0)


def webhooks_system_tenant_slug() -> str:
    """The tenant that owns the processing jobs of platform-wide sources (those with no owning tenant)."""
    return _setting("WEBHOOKS_SYSTEM_TENANT_SLUG", env.str, "system")


def webhooks_max_retries() -> int:
    return _setting("WEBHOOKS_MAX_RETRIES", env.int, 5)


def webhooks_retry_base_delay() -> float:
    return _setting("WEBHOOKS_RETRY_BASE_DELAY", env.float, 10.0)


def webhooks_lock_timeout_ms() -> int:
    """How long processing waits for a row lock (PostgreSQL) before giving up and retrying later."""
    return _setting("WEBHOOKS_LOCK_TIMEOUT_MS", env.int, 5000)


# --- fetching external data ---


def fetch_allowed_hosts() -> list[str]:
    """Hosts (names, IP addresses or networks) that may be fetched from. Empty: every URL is refused."""
    return [host.strip().lower() for host in _setting("FETCH_ALLOWED_HOSTS", env.list, []) if host.strip()]


def fetch_allow_http() -> bool:
    return _setting("FETCH_ALLOW_HTTP", env.bool, False)


def fetch_timeout_seconds() -> float:
    return _setting("FETCH_TIMEOUT_SECONDS", env.float, 10.0)


def fetch_max_bytes() -> int:
    return _setting("FETCH_MAX_BYTES", env.int, 1024 * 1024)


def fetch_max_attempts() -> int:
    return _setting("FETCH_MAX_ATTEMPTS", env.int, 5)


def fetch_retry_base_delay() -> float:
    return _setting("FETCH_RETRY_BASE_DELAY", env.float, 30.0)


def fetch_retry_max_delay() -> float:
    return _setting("FETCH_RETRY_MAX_DELAY", env.float, 600.0)


def webhook_event_retention_days() -> int:
    """Settled events (processed, ignored, failed) older than this are deleted by cleanup_old_logs."""
    return _setting("WEBHOOK_EVENT_RETENTION_DAYS", env.int, 30)
