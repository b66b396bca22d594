from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    """This process's client for REDIS_URL (rate limits, delivery receipts); short timeouts, never a hang."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
