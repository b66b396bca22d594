"""Beat's scheduler: django-celery-beat's DatabaseScheduler, sending only while it holds a lock in Redis.

Two beat processes started by mistake would otherwise send every tick twice. The one holding the lock sends; the
other waits and takes over within JOBS_BEAT_LOCK_SECONDS if the first one dies, reloading the schedule (with the
last run times the leader saved after every send) so it neither repeats nor skips a tick.
"""

import logging
import uuid

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "jobs:beat:leader"
# Renew our lock, or take it when free. Returns 1 when we hold it afterwards.
HOLD_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class SingleBeatScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self._lock_ttl = float(settings.JOBS_BEAT_LOCK_SECONDS)
        self._token = uuid.uuid4().hex
        self._leader = False
        super().__init__(*args, **kwargs)
        self._redis = redis.Redis.from_url(self.app.conf.broker_url, socket_connect_timeout=2, socket_timeout=5)

    def tick(self, *args, **kwargs) -> float:
        recheck = self._lock_ttl / 3
        if not self._hold_lock():
            return recheck
        return min(super().tick(*args, **kwargs), recheck)

    def _hold_lock(self) -> bool:
        try:
            held = bool(self._redis.eval(HOLD_LOCK, 1, LOCK_KEY, self._token, int(self._lock_ttl * 1000)))
        except redis.RedisError:
            held = False  # without Redis nothing can be sent anyway; whoever holds the lock after it wins
        if held and not self._leader:
            logger.info("Beat: this process now sends the schedule (leader lock taken)")
            # Another beat may have sent ticks since we read the schedule: read it again, last runs included.
            self._schedule = self.all_as_schedule()
            self._heap = []
            self._heap_invalidated = True
        elif self._leader and not held:
            logger.warning("Beat: leader lock lost; standing by")
        self._leader = held
        return held

    def close(self) -> None:
        try:
            self._redis.eval(RELEASE_LOCK, 1, LOCK_KEY, self._token)
        except redis.RedisError:
            logger.warning("Beat: could not release the leader lock; it expires by itself")
        super().close()
