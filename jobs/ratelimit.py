"""Rate limits shared by every worker process, counted in Redis (Celery's own ``rate_limit`` is per worker).

Each limit is a GCRA bucket: requests are spaced evenly at the limit's rate, with no burst beyond it. Several buckets
are checked and taken together, atomically, so a send held back by one limit uses up no room in another.
"""

import logging

import redis

from jobs.redis_client import redis_client

logger = logging.getLogger(__name__)

UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}

# KEYS: buckets; ARGV: the spacing of each bucket in microseconds. Returns 0 when every bucket had room (and takes
# it in all of them), else the microseconds to wait before the fullest one has room.
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local wait, due = 0, {}
for i, key in ipairs(KEYS) do
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    due[i] = tat
    if tat - now > wait then wait = tat - now end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
    local spacing = tonumber(ARGV[i])
    redis.call('SET', key, due[i] + spacing, 'PX', math.ceil(spacing / 1000) + 1000)
end
return 0
"""


def parse_rate(rate: str) -> float:
    """Requests per second from ``"10/s"``, ``"600/min"`` and the like."""
    count, _, unit = rate.partition("/")
    return float(count) / UNITS[unit.strip() or "s"]


def rate_limit_take(*, buckets: dict[str, str]) -> float:
    """Take one slot from every bucket (name → rate) if all have room; else return the seconds to wait.

    With Redis unreachable it lets the work through: nothing can be queued then anyway, and a missing counter must not
    stop the jobs already running.
    """
    spacing = [round(1_000_000 / parse_rate(rate)) for rate in buckets.values()]
    try:
        wait_us = redis_client().eval(TAKE, len(buckets), *(f"ratelimit:{name}" for name in buckets), *spacing)
    except redis.RedisError:
        logger.warning("Rate limit not applied: Redis is unreachable")
        return 0.0
    return wait_us / 1_000_000
