import logging
import threading
import time
from functools import cache

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from jobs.redis_client import redis_client

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_leases: dict[str, tuple[int, float]] = {}  # this process's batches: tenant key → (requests left, expires)
_leases_lock = threading.Lock()

# GCRA with a burst of the whole budget: "600/min" lets 600 requests through at once, then one every 100 ms.
# One atomic script and one small key per tenant, whatever the rate (a log of request times, as DRF's
# SimpleRateThrottle keeps, costs time in proportion to the requests in the window: 5.5 ms a request at 30,000).
# KEYS[1]: the tenant's key; ARGV: the spacing and the burst allowance in microseconds, and how many requests to take
# at most. Returns {requests taken (at least 1, or 0 when none may go), microseconds to wait when none may}.
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local spacing, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local room = math.floor((now + burst - tat) / spacing) + 1
if room < 1 then return {0, tat - now - burst} end
local taken = math.min(room, wanted)
tat = tat + taken * spacing
redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1000)
return {taken, 0}
"""

# At a high rate each process takes a small batch of requests from its tenant's budget at once, 1/LEASE_SHARE of a
# second's worth (at most LEASE_MAX), and counts them down in memory: one Redis call per batch instead of one per
# request. What a batch does not use within 1/LEASE_SHARE s lapses, so over any window at most that much of the
# budget more gets through (one batch spent late), and an idle batch never holds requests back from other processes
# for long; at 600/min (10 a second) a batch is a single request, as without batches.
LEASE_SHARE = 20
LEASE_MAX = 100
LEASES_MAX = 10_000


@cache
def _take():
    return redis_client().register_script(TAKE)  # sent by its SHA after the first call


def parse_rate(rate: str) -> tuple[int, int]:
    """(requests, seconds) from ``"600/min"``, ``"10/s"``, ``"1000/hour"``, ``"5000/day"``."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip()[0]]


class TenantRateThrottle(BaseThrottle):
    """One budget per tenant (API_TENANT_RATE), shared by all its users and all web processes (counted in Redis).

    It fails open: when Redis is unreachable the request goes through, because accepting work while the broker is
    down is exactly what the job relay is for.
    """

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def get_ident_key(self, request) -> str:
        tenant_id = getattr(request.user, "tenant_id", None)
        return f"throttle:tenant:t{tenant_id}" if tenant_id else f"throttle:tenant:ip{self.get_ident(request)}"

    def allow_request(self, request, view) -> bool:
        key = self.get_ident_key(request)
        with _leases_lock:
            remaining, expires = _leases.pop(key, (0, 0.0))
            if remaining > 0 and expires > time.monotonic():
                if remaining > 1:
                    _leases[key] = (remaining - 1, expires)
                return True
        count, seconds = parse_rate(settings.API_TENANT_RATE)
        spacing = max(1, round(seconds * 1_000_000 / count))  # microseconds; a rate above a million a second is one
        wanted = max(1, min(LEASE_MAX, count // (seconds * LEASE_SHARE)))
        try:
            taken, wait_us = _take()(keys=[key], args=[spacing, spacing * (count - 1), wanted])
        except (RedisError, OSError):
            logger.warning("Throttle skipped: Redis is unreachable")
            return True
        if taken > 1:
            with _leases_lock:
                if len(_leases) >= LEASES_MAX:  # keys of clients never seen again (by IP, without a tenant)
                    _leases.clear()
                # Unused requests of a batch lapse after 1/LEASE_SHARE s, about when the budget would have refilled
                # them: a request let through late by a batch is at most that late.
                _leases[key] = (taken - 1, time.monotonic() + 1 / LEASE_SHARE)
        self.wait_seconds = wait_us / 1_000_000
        return taken > 0

    def wait(self) -> float | None:
        return self.wait_seconds
