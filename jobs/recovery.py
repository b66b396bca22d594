"""Find accepted jobs that nothing will run any more, and publish them again.

A job can be stranded two ways the broker cannot fix quickly: its worker died holding it (Redis would hand the message
back only after the visibility timeout, hours later, on purpose), or Redis itself lost its data. The sweeper compares
three views — the jobs the database says are unfinished, the messages waiting in the broker's queues, and the tasks
that live workers report running, reserved or scheduled — and republishes what is in none of them. A job must look
stranded on two sweeps in a row before it is republished, so a message caught in flight is never sent twice.
"""

import json
import logging
from datetime import timedelta

import redis
from celery import current_app, states
from django.conf import settings
from django.utils import timezone

from jobs.models import Job
from jobs.ops import workers_inspect
from jobs.services import BROKER_ERRORS, job_publish

logger = logging.getLogger(__name__)

SUSPECTS_KEY = "jobs:sweeper:suspects"


def jobs_recover_stranded(*, grace: timedelta | None = None, window: timedelta | None = None) -> list[str]:
    """Republish stranded jobs; return their task ids. Does nothing when the broker cannot be reached."""
    grace = grace if grace is not None else timedelta(seconds=settings.JOBS_SWEEP_GRACE_SECONDS)
    window = window if window is not None else timedelta(hours=settings.JOBS_SWEEP_WINDOW_HOURS)
    client = _broker_redis()
    try:
        queued, unacked = _broker_holdings(client)  # read before asking the workers: a message moves queue → worker
        held_by_workers = _held_by_live_workers()
    except BROKER_ERRORS:
        logger.warning("Sweeper: broker unreachable; nothing recovered this time")
        return []
    now = timezone.now()
    unfinished = (
        Job.objects.filter(
            accepted_at__gte=now - window, published_at__lte=now - grace, canceled_at__isnull=True
        ).exclude(result__status__in=states.READY_STATES)  # no result row yet, or one that is not final
    )
    stranded = {
        job.task_id: job for job in unfinished if job.task_id not in queued and job.task_id not in held_by_workers
    }
    previous = {member.decode() for member in client.smembers(SUSPECTS_KEY)}
    pipe = client.pipeline()
    pipe.delete(SUSPECTS_KEY)
    if stranded:
        pipe.sadd(SUSPECTS_KEY, *stranded)
        pipe.expire(SUSPECTS_KEY, int(grace.total_seconds()) * 4 + 600)
    pipe.execute()

    recovered = []
    for task_id in sorted(stranded.keys() & previous):
        job = stranded[task_id]
        _forget_unacked(client, unacked.get(task_id))  # or Redis would hand the old copy out again hours later
        if job_publish(job=job):
            recovered.append(task_id)
            logger.warning("Sweeper republished stranded job %s (%s, tenant %s)", task_id, job.kind, job.tenant_id)
    return recovered


def _broker_redis() -> redis.Redis:
    return redis.Redis.from_url(current_app.conf.broker_url, socket_connect_timeout=2, socket_timeout=5)


def _queue_keys(client: redis.Redis) -> list[bytes]:
    keys = []
    for queue in settings.CELERY_TASK_QUEUES:
        keys.append(queue.name.encode())
        keys.extend(client.scan_iter(match=f"{queue.name}\x06\x16*".encode()))  # kombu's priority sub-queues
    return keys


def _broker_holdings(client: redis.Redis) -> tuple[set[str], dict[str, bytes]]:
    """Task ids waiting in the queues, and the delivery tags of messages handed out but not yet acknowledged."""
    queued: set[str] = set()
    for key in _queue_keys(client):
        for raw in client.lrange(key, 0, -1):
            task_id = _task_id_of(raw)
            if task_id:
                queued.add(task_id)
    unacked: dict[str, bytes] = {}
    for tag, raw in client.hgetall("unacked").items():
        try:
            task_id = _task_id_of(json.loads(raw)[0])
        except (ValueError, IndexError, TypeError):
            continue
        if task_id:
            unacked[task_id] = tag
    return queued, unacked


def _task_id_of(message) -> str | None:
    try:
        if isinstance(message, bytes | str):
            message = json.loads(message)
        return message["headers"]["id"]
    except (ValueError, KeyError, TypeError):
        return None


def _held_by_live_workers() -> set[str]:
    return {
        task["id"]
        for worker in workers_inspect(timeout=settings.JOBS_SWEEP_INSPECT_TIMEOUT)
        for task in (*worker.active, *worker.reserved, *worker.scheduled)
        if task.get("id")
    }


def _forget_unacked(client: redis.Redis, tag: bytes | None) -> None:
    if tag is not None:
        client.pipeline().hdel("unacked", tag).zrem("unacked_index", tag).execute()
