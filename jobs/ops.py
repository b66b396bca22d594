"""What operators ask of the running system: workers, queue depths and recent failures (``queue_status``), and
the failed jobs ``retry_failed`` offers to retry."""

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import current_app, states
from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django_celery_results.models import TaskResult
from kombu.exceptions import ChannelError

from jobs.control import HELD
from jobs.models import Job

logger = logging.getLogger(__name__)

DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration_parse(text: str) -> timedelta:
    """``90m``, ``24h``, ``7d``, ``2w``, ``30s`` as a timedelta; ValueError otherwise."""
    match = DURATION.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90m, 24h or 7d")
    try:
        return timedelta(**{UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than a duration can be") from None


@dataclass
class WorkerInfo:
    name: str
    active: list[dict] = field(default_factory=list)
    reserved: list[dict] = field(default_factory=list)
    scheduled: list[dict] = field(default_factory=list)


def workers_inspect(*, timeout: float = 1.0) -> list[WorkerInfo]:
    """Workers that answer within ``timeout``, with their running, reserved and scheduled (ETA) tasks."""
    answers = current_app.control.broadcast(HELD, reply=True, timeout=timeout)
    workers = {}
    for name, held in sorted((item for reply in answers for item in reply.items()), key=lambda item: item[0]):
        if "active" not in held:  # a worker from before jobs.control (a rolling deploy): Celery's three questions
            held = _held_asked_separately(name, timeout=timeout)
        workers[name] = WorkerInfo(name=name, active=held["active"], reserved=held["reserved"],
                                   scheduled=held["scheduled"])  # fmt: skip
    return list(workers.values())


def _held_asked_separately(name: str, *, timeout: float) -> dict[str, list[dict]]:
    inspector = current_app.control.inspect(destination=[name], timeout=timeout)
    held = {"active": inspector.active(), "reserved": inspector.reserved(), "scheduled": inspector.scheduled()}
    # scheduled() wraps each task as {"eta", "priority", "request": {...}}
    return {key: [task.get("request", task) for task in (answer or {}).get(name) or []] for key, answer in held.items()}


def queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def queue_depths() -> dict[str, int]:
    """Messages waiting in each configured queue. On Redis a queue is a list named after it, plus one list per
    priority step (``<name>\\x06\\x16<n>``); kombu's passive declare sums them."""
    depths = {}
    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        for name in queue_names():
            try:
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:
                depths[name] = 0  # Redis has no key for an empty queue
    return depths


def failures_since(*, since: datetime) -> list[tuple[str, int]]:
    """Failed tasks since ``since`` grouped by job kind; tasks without a Job (beat's) by task name."""
    failed = TaskResult.objects.filter(status=states.FAILURE, date_done__gte=since)
    by_kind = (
        Job.objects.filter(task_id__in=failed.values("task_id"))
        .values("kind")
        .annotate(n=Count("pk"))
        .values_list("kind", "n")
    )
    system = (
        failed.exclude(Exists(Job.objects.filter(task_id=OuterRef("task_id"))))
        .values("task_name")
        .annotate(n=Count("pk"))
        .values_list("task_name", "n")
    )
    rows = [(kind, n) for kind, n in by_kind] + [(f"{name or '?'} (system)", n) for name, n in system]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def failed_jobs(*, since: datetime, kind: str | None = None):
    """Jobs whose task ended FAILURE since ``since`` (oldest first), optionally of one kind."""
    jobs = Job.objects.filter(result__status=states.FAILURE, result__date_done__gte=since, canceled_at__isnull=True)
    if kind:
        jobs = jobs.filter(kind=kind)
    return jobs.select_related("result").order_by("accepted_at")
