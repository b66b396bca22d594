"""Two beat processes started by mistake: each tick still runs once, and the second takes over if the first dies."""

import subprocess
import sys
import time
import uuid

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.conftest import PROJECT_DIR, subprocess_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def start_beat(tmp_path, name: str, redis_url: str) -> subprocess.Popen:
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", "--max-interval=1",
         f"--schedule={tmp_path / name}"],
        cwd=PROJECT_DIR, env=subprocess_env(TEST_REDIS_URL=redis_url, JOBS_BEAT_LOCK_SECONDS="3"),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def ticks(client, key: str) -> list[float]:
    return sorted(float(t) for t in client.lrange(key, 0, -1))


def test_two_beats_send_each_tick_once_and_the_survivor_takes_over(private_redis, worker_process, tmp_path):
    # given a schedule firing every 2 seconds, a worker, and two beat processes
    key = f"ticks-{uuid.uuid4().hex}"
    every_2s, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="tick", task="tests.record_tick", interval=every_2s, args=f'["{key}"]')
    worker_process(TEST_REDIS_URL=private_redis.url).start()
    client = private_redis.client()
    beats = {f"beat{i}": start_beat(tmp_path, f"beat{i}", private_redis.url) for i in range(2)}
    try:
        wait_until(lambda: all("beat: Starting" in (tmp_path / f"{name}.log").read_text() for name in beats),
                   timeout=60, what="both beats did not start")  # fmt: skip
        since = time.time()
        wait_until(lambda: len([t for t in ticks(client, key) if t > since]) >= 4, timeout=60, what="no four ticks")
        both_running = ticks(client, key)

        # when the beat holding the lock dies
        [leader] = [name for name in beats if "now sends the schedule" in (tmp_path / f"{name}.log").read_text()]
        beats.pop(leader).kill()
        wait_until(lambda: len(ticks(client, key)) >= len(both_running) + 3, timeout=60, what="no takeover")
        time.sleep(4)  # two more intervals: a tick sent twice would show in the gaps
        after = ticks(client, key)
    finally:
        for beat in beats.values():
            beat.kill()
        for beat in beats.values():
            beat.wait()

    [survivor] = beats
    # then no tick ran twice (a second beat sending too would put ticks ~0 s apart) and ticks went on after failover
    gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert min(gaps) > 1.0, gaps
    assert "now sends the schedule" in (tmp_path / f"{survivor}.log").read_text()
