"""Tasks that exist only under the test settings (CELERY_IMPORTS), for the chaos suite."""

import os
import signal
import time

import redis
from celery import current_app, shared_task
from celery.signals import before_task_publish

from jobs.tasks import JobTask


@shared_task(bind=True, base=JobTask, name="tests.crash_every_time")
def crash_every_time(self) -> None:
    """A poison pill: the pool process dies every time this runs."""
    os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="tests.record_tick", ignore_result=True)
def record_tick(key: str, sent_at: float | None = None) -> None:
    """Append when the tick was sent to a Redis list, so a test can see how often a schedule fired (a send time: a
    worker starved of CPU runs two ticks back to back, but beat sent them two intervals apart)."""
    redis.Redis.from_url(current_app.conf.broker_url).rpush(key, sent_at or time.time())


@before_task_publish.connect
def _stamp_tick_with_its_send_time(sender=None, body=None, **kwargs) -> None:
    if sender == "tests.record_tick":
        body[1]["sent_at"] = time.time()  # (args, kwargs, embed), serialized after this signal


@shared_task(name="tests.database_session")
def database_session() -> int:
    """The PostgreSQL server process behind the connection this task ran on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@shared_task(bind=True, base=JobTask, name="tests.retry_at_once")
def retry_at_once(self) -> str:
    """Asks to run again at once, the first time: the retry's message may be taken before this run has returned."""
    if self.request.retries == 0:
        raise self.retry(countdown=0, max_retries=1)
    return "second run"
