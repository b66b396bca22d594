import logging
import threading
import time
from functools import cache

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from jobs.redis_client import redis_backing_off, redis_client, redis_failed

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_leases: dict[str, tuple[int, float]] = {}  # this process's batches: tenant key → (requests left, expires)
_leases_lock = threading.Lock()

# A sliding log: the tenant's requests in the last period, in one sorted set per tenant, so that "600/min" lets at
# most 600 requests through in any 60 s, however they bunch (a token bucket as large as the budget would let through
# twice it: the whole budget at once, then its refill). An entry is a request or a batch of them (below), named
# "<n>@<time>:<how many>" and dated when it was taken; a hash beside it (throttle:used:…) keeps the total they hold
# and the last n. One atomic script and one Redis call per request (or per batch): the log holds at most an entry per
# request or batch in the period, and its cost grows with that only as a sorted set's does, by its logarithm.
# KEYS: the log and its hash; ARGV: the period in microseconds, the limit, how many requests to take at most, and how
# long in microseconds a batch may take to be used (it is dated that much later, so that a request let through late
# from a batch still counts in every period it falls in). Returns {requests taken (at least 1, or 0 when none may go),
# microseconds to wait when none may}.
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local period, limit, wanted, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function requests(entries)  -- how many requests log entries stand for
    local count = 0
    for _, entry in ipairs(entries) do count = count + (tonumber(string.match(entry, ':(%d+)$')) or 1) end
    return count
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - period)
if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
    redis.call('HINCRBY', KEYS[2], 'used', -requests(gone))
end
local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '-1')
if used < 0 or (used > 0 and redis.call('ZCARD', KEYS[1]) == 0) then
    -- a new tenant, or one of the two keys was lost (deleted, evicted): count the total again from the log
    used = requests(redis.call('ZRANGE', KEYS[1], 0, -1))
    redis.call('HSET', KEYS[2], 'used', used)
end
local room = limit - used
if room < 1 then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    if oldest[2] == nil then return {0, period} end  -- a limit of 0: nothing ever goes
    return {0, math.max(1, tonumber(oldest[2]) + period - now)}
end
local taken = math.min(room, wanted)
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('ZADD', KEYS[1], now + hold, n .. '@' .. now .. ':' .. taken)  -- unique even if n started again
redis.call('HINCRBY', KEYS[2], 'used', taken)
local expires = math.ceil((period + hold) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], expires)
redis.call('PEXPIRE', KEYS[2], expires)
return {taken, 0}
"""

# At a high rate each process takes a small batch of requests from its tenant's budget at once, 1/LEASE_SHARE of a
# second's worth (at most LEASE_MAX), and counts them down in memory: one Redis call per batch instead of one per
# request. What a batch does not use within 1/LEASE_SHARE s lapses (still counted: the limit is never exceeded, and
# at worst a batch per process goes unused), so an idle batch never holds requests back from other processes for
# long; at 600/min (10 a second) a batch is a single request, as without batches.
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

    def keys(self, request) -> tuple[str, str]:
        """The tenant's (or, before authentication, the client address's) log and total. Named "log" and "used", not
        the earlier token bucket's "tenant": a key of the old kind left in Redis would be refused by the script (a
        string, not a sorted set), and the throttle would let everything through until it expired."""
        tenant_id = getattr(request.user, "tenant_id", None)
        ident = f"t{tenant_id}" if tenant_id else f"ip{self.get_ident(request)}"
        return f"throttle:log:{ident}", f"throttle:used:{ident}"

    def allow_request(self, request, view) -> bool:
        key, total_key = self.keys(request)
        with _leases_lock:
            remaining, expires = _leases.pop(key, (0, 0.0))
            if remaining > 0 and expires > time.monotonic():
                if remaining > 1:
                    _leases[key] = (remaining - 1, expires)
                return True
        if redis_backing_off(settings.REDIS_URL):
            return True  # it failed moments ago (jobs.redis_client): fail open without waiting on it again
        count, seconds = parse_rate(settings.API_TENANT_RATE)
        wanted = max(1, min(LEASE_MAX, count // (seconds * LEASE_SHARE)))
        hold = 1_000_000 // LEASE_SHARE if wanted > 1 else 0
        asked = time.monotonic()  # a batch lapses counting from before the script dated it, never after
        try:
            taken, wait_us = _take()(keys=[key, total_key], args=[seconds * 1_000_000, count, wanted, hold])
        except (RedisError, OSError):
            redis_failed(settings.REDIS_URL)
            logger.warning("Throttle skipped: Redis is unreachable")
            return True
        if taken > 1:
            with _leases_lock:
                if len(_leases) >= LEASES_MAX:  # keys of clients never seen again (by IP, without a tenant)
                    _leases.clear()
                # Unused requests of a batch lapse after 1/LEASE_SHARE s: as long as the script dated them for.
                _leases[key] = (taken - 1, asked + 1 / LEASE_SHARE)
        self.wait_seconds = wait_us / 1_000_000
        return taken > 0

    def wait(self) -> float | None:
        return self.wait_seconds
