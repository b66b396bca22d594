import time
from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    """This process's client for REDIS_URL (rate limits, delivery receipts); short timeouts, never a hang."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)


# After a call to a Redis server failed (refused, or no answer within its timeout), a web process does not call that
# server again for this many seconds on a request's way (the throttle, the publish): a Redis that hangs then costs one
# request its timeouts, not every request. 0, the default, is off: config/wsgi.py sets WEB_REDIS_BACKOFF_SECONDS.
BACKOFF_SECONDS = 0.0
_failed_until: dict[str, float] = {}  # Redis URL → monotonic time until which it is not asked


def redis_backing_off(url: str) -> bool:
    """True while the server at ``url`` failed less than BACKOFF_SECONDS ago: skip it (fail open, or leave the job
    to the relay)."""
    return _failed_until.get(url, 0.0) > time.monotonic()


def redis_failed(url: str) -> None:
    """Note that a call to the server at ``url`` just failed."""
    if BACKOFF_SECONDS > 0:
        _failed_until[url] = time.monotonic() + BACKOFF_SECONDS
