import logging
from functools import cache

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from jobs.redis_client import redis_client

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# GCRA with a burst of the whole budget: "600/min" lets 600 requests through at once, then one every 100 ms.
# One atomic script and one small key per tenant, whatever the rate (a log of request times, as DRF's
# SimpleRateThrottle keeps, costs time in proportion to the requests in the window: 5.5 ms a request at 30,000).
# KEYS[1]: the tenant's key; ARGV: the spacing and the burst allowance in microseconds. Returns the microseconds
# to wait, 0 when the request may go (and is counted).
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local spacing, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - burst
if wait > 0 then return wait end
redis.call('SET', KEYS[1], tat + spacing, 'PX', math.ceil((tat + spacing - now) / 1000) + 1000)
return 0
"""


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
        count, seconds = parse_rate(settings.API_TENANT_RATE)
        spacing = round(seconds * 1_000_000 / count)
        try:
            wait_us = _take()(keys=[self.get_ident_key(request)], args=[spacing, spacing * (count - 1)])
        except (RedisError, OSError):
            logger.warning("Throttle skipped: Redis is unreachable")
            return True
        self.wait_seconds = wait_us / 1_000_000
        return wait_us == 0

    def wait(self) -> float | None:
        return self.wait_seconds
