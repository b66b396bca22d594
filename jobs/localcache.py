"""A per-process cache of the two reads every API call makes (the user behind a token, a task's status), kept true
by invalidation messages that every writer publishes on one Redis pub/sub channel.

Each process (a gunicorn worker, say) subscribes once, and before every read it takes whatever invalidations are
waiting on that connection, without blocking: one ``poll`` call, no round trip. A hit therefore costs no database
query and no Redis command, which is what lets a status poll run near the speed of a view that returns a constant
(bench/, the status figure). Correctness rests on four rules:

- **A writer publishes after its commit** (``invalidate``): Redis writes the message to every subscriber's socket in
  the same pass that answers the writer, so a client that made a change and then asks sees it, whatever process
  answers. The writer's own process forgets without waiting for the message.
- **What a process reads inside a transaction is not kept**: it may roll back.
- **An entry read from the database is kept only if no invalidation was taken meanwhile** (an epoch, for threads).
- **No connection, no cache**: while the subscription is down (Redis restarting, say), or has not answered a ping in
  the last two seconds, reads go to the database; the cache starts empty once it is back, as messages may have been
  missed meanwhile.

Entries also expire after ``JOBS_LOCAL_CACHE_SECONDS`` (0 turns the cache off), a bound on any write that does not
go through ``invalidate`` (a manual SQL ``UPDATE``, for instance).
"""

import logging
import os
import select
import threading
import time
from collections.abc import Callable, Hashable
from functools import cache

import redis
from django.conf import settings
from django.db import connection, transaction
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from jobs.redis_client import redis_backing_off, redis_client, redis_failed

logger = logging.getLogger(__name__)

CHANNEL = "jobs:localcache:invalidate:db{db}"  # Redis's channels span its databases; the name keeps ours apart
MAX_ENTRIES = 5_000  # per namespace; a full namespace starts over
RECONNECT_SECONDS = 1.0  # while Redis is down, try to subscribe again at most this often
PING_SECONDS, ALIVE_SECONDS, DEAD_SECONDS = 1.0, 2.0, 3.0  # the subscription's liveness check (see below)


class LocalCache:
    """Namespaced entries (``("auth", key)``, ``("status", task id)``); one instance per process, ``local_cache``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, dict[Hashable, tuple[float, object]]] = {}
        self._pubsub = None
        self._poller = None
        self._reconnected = False
        self._pong_at = 0.0
        self._ping_sent_at: float | None = None
        self._pid: int | None = None
        self._epoch = 0
        self._retry_at = 0.0

    def get_or_load(
        self, namespace: str, key: Hashable, load: Callable[[], object], keep: Callable[[object], bool] = bool
    ) -> object:
        """The cached value, or ``load()``'s: kept if ``keep(value)`` (by default, if it is not None), unless the
        cache is down or a transaction is open."""
        max_age = settings.JOBS_LOCAL_CACHE_SECONDS
        if not max_age:
            return load()
        with self._lock:
            epoch = self._take_invalidations()
            if epoch is not None:
                entry = self._entries.get(namespace, {}).get(key)
                if entry is not None and entry[0] > time.monotonic():
                    return entry[1]
        value = load()
        if epoch is None or connection.in_atomic_block or not keep(value):
            return value
        with self._lock:
            if self._epoch == epoch:  # nothing taken, nothing dropped or resubscribed meanwhile (each moves it)
                entries = self._entries.setdefault(namespace, {})
                if len(entries) >= MAX_ENTRIES:
                    entries.clear()
                entries[key] = (time.monotonic() + max_age, value)
        return value

    def forget(self, namespace: str, key: Hashable | None = None) -> None:
        """Drop one entry, or the whole namespace when ``key`` is None."""
        with self._lock:
            self._epoch += 1
            if key is None:
                self._entries.pop(namespace, None)
            else:
                self._entries.get(namespace, {}).pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def reset(self) -> None:
        """Empty, unsubscribed, and free to subscribe at the next read (for tests)."""
        with self._lock:
            self._drop()
            self._retry_at = 0.0

    # --- the subscription ---------------------------------------------------------------------------------------

    def _take_invalidations(self) -> int | None:
        """Apply the invalidations waiting on the subscription; return the epoch, or None when there is no cache."""
        if self._pid != os.getpid():  # a forked child must not read its parent's socket
            self._pubsub, self._pid = None, os.getpid()
            self.clear()
        if self._pubsub is None and not self._subscribe():
            return None
        try:
            # Most of the time nothing is waiting: one poll of the socket says so. Each drain reads until the client
            # has no whole message buffered, so an idle socket means nothing is pending.
            if self._poller.poll(0):
                while (message := self._pubsub.get_message(timeout=0)) is not None:
                    if message["type"] == "message":
                        self._apply(message["data"].decode())
                    elif message["type"] == "pong":
                        self._pong_at, self._ping_sent_at = time.monotonic(), None
                if self._reconnected:
                    raise RedisError("the subscription was made again")
            # A connection can die without a word (a half-open TCP connection, a NAT or load balancer timing out): it
            # would then look subscribed while every invalidation is lost. So it is pinged every PING_SECONDS, and
            # the cache serves only while an answer came within ALIVE_SECONDS; no answer in DEAD_SECONDS drops it.
            now = time.monotonic()
            if self._ping_sent_at is None:
                if now - self._pong_at >= PING_SECONDS:
                    self._pubsub.ping()
                    self._ping_sent_at = now
            elif now - self._ping_sent_at > DEAD_SECONDS:
                raise RedisError("no answer to a ping")
        except (RedisError, OSError, ValueError) as exc:
            logger.warning("Local cache: the invalidation channel broke (%s); reading from the database until it is "
                           "back", exc)  # fmt: skip
            self._drop()
            redis_failed(settings.REDIS_URL)  # web processes: not asked again for a while (jobs.redis_client)
            return None
        return self._epoch if now - self._pong_at <= ALIVE_SECONDS else None

    def _subscribe(self) -> bool:
        # In web processes a Redis that failed moments ago (here, or for the throttle) is left alone for a while: one
        # that hangs rather than refuses would otherwise hold a request at every attempt, here once a second.
        if time.monotonic() < self._retry_at or redis_backing_off(settings.REDIS_URL):
            return False
        pubsub = _subscriber_client().pubsub()
        try:
            pubsub.subscribe(_channel())
            confirmed = pubsub.get_message(timeout=1.0)  # messages are delivered only once this arrives
            if confirmed is None or confirmed["type"] != "subscribe":
                raise RedisError("no subscription confirmation")
            # redis-py may reconnect and subscribe again by itself; messages sent in between would be lost unseen.
            self._reconnected = False
            pubsub.connection.register_connect_callback(self._on_reconnect)
        except (RedisError, OSError) as exc:
            logger.warning("Local cache off: cannot subscribe to invalidations (%s)", exc)
            pubsub.close()
            self._retry_at = time.monotonic() + RECONNECT_SECONDS
            redis_failed(settings.REDIS_URL)
            return False
        self.clear()  # whatever was kept before may have missed messages
        self._pubsub = pubsub
        self._pong_at, self._ping_sent_at = time.monotonic(), None  # the confirmation is as good as an answer
        self._poller = select.poll()
        self._poller.register(pubsub.connection._sock, select.POLLIN)  # redis-py keeps the socket there
        return True

    def _on_reconnect(self, connection) -> None:
        self._reconnected = True

    def _drop(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except (RedisError, OSError):
                pass
        self._pubsub = None
        self._retry_at = time.monotonic() + RECONNECT_SECONDS
        self.clear()

    def _apply(self, message: str) -> None:
        namespace, _, key = message.partition(":")
        self.forget(namespace, key or None)


local_cache = LocalCache()


def _channel() -> str:
    return CHANNEL.format(db=redis_client().get_connection_kwargs().get("db", 0))


@cache
def _subscriber_client() -> redis.Redis:
    """A client of its own for the subscription, which must fail rather than quietly reconnect (see above)."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=1,
        socket_timeout=1,  # a subscription's reads are polls (timeout 0) and its confirmation waits 1 s itself
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
    )


def invalidate(namespace: str, key: str | None = None) -> None:
    """Tell every process to drop an entry (or a whole namespace) once the transaction
    in progress commits, or now when there is none. (Nothing read inside a transaction was kept, so a rollback leaves
    nothing to drop.)"""
    message = f"{namespace}:{key}" if key is not None else namespace
    transaction.on_commit(lambda: _forget_and_publish(message))


def _forget_and_publish(message: str) -> None:
    local_cache._apply(message)
    try:
        try:
            redis_client().publish(_channel(), message)
        except (RedisError, OSError):
            redis_client().publish(_channel(), message)  # once more, on a fresh connection (the last one may be stale)
    except (RedisError, OSError):
        # Redis is then most likely out of reach of the subscribers too, and a broken subscription empties its
        # cache; at worst (only this process cut off from Redis), an entry lives JOBS_LOCAL_CACHE_SECONDS.
        logger.warning("Local cache: could not publish the invalidation %r", message)
