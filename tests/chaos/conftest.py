import contextlib
import shutil
import subprocess
import time

import pytest
import redis

from jobs.localcache import _subscriber_client, local_cache
from jobs.redis_client import redis_client
from tests.conftest import broker_at, free_port


class RedisServer:
    """A private redis-server, keeping nothing on disk, that a test may stop, restart or flush."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Kill and start again: with no persistence, everything it held is gone."""
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def private_redis(tmp_path, settings):
    """A private Redis as the broker and the Redis of this test: for the test's own publishers, throttle and cache
    invalidations now, for workers started with ``TEST_REDIS_URL=private_redis.url``: one Redis for every process,
    as in a deployment."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    try:
        with broker_at(server.url), redis_at(server.url, settings):
            yield server
    finally:
        server.stop()


@contextlib.contextmanager
def redis_at(url: str, settings):
    """Point this process's REDIS_URL clients (throttle, rate limits, the local cache's subscription) at ``url``."""

    def switch(to: str) -> None:
        settings.REDIS_URL = to
        redis_client.cache_clear()
        _subscriber_client.cache_clear()
        local_cache.reset()

    original = settings.REDIS_URL
    switch(url)
    try:
        yield
    finally:
        switch(original)
