"""Tenant-scoped reads of jobs and their state. "Not yours" and "does not exist" both come back as None."""

import json
from datetime import UTC, datetime

from celery import states
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_celery_results.models import TaskResult

from jobs.localcache import local_cache
from jobs.models import Job

FINAL_STATES = frozenset(states.READY_STATES)  # SUCCESS, FAILURE, REVOKED
PROGRESS = "PROGRESS"  # the custom state of tasks that report how far they are
CANCELED_ERROR = "Canceled."  # the error a canceled job reads with, and its domain row (a report)
ERROR_MAX_CHARS = 300
CACHED_RESULT_MAX_CHARS = 4096  # a larger result (fetched data, say) is read from the database on every poll


# The status endpoint's whole read, written out: the ORM spends about 1 ms of Python building this join and its model
# instances on every poll, for six values (bench/: 1.7 ms against 0.5 ms per lookup).
_STATUS_SQL = (
    f"SELECT j.tenant_id, j.task_id, j.kind, j.accepted_at, j.canceled_at, r.status, r.result "
    f"FROM {Job._meta.db_table} j LEFT JOIN {TaskResult._meta.db_table} r ON r.task_id = j.task_id WHERE j.task_id = %s"
)


def _possible_task_id(task_id: str) -> bool:
    return len(task_id) <= 255 and "\x00" not in task_id  # PostgreSQL would refuse a NUL outright


def job_get(*, tenant_id: int, task_id: str) -> Job | None:
    """The tenant's job with this public id, its result row joined in the same query."""
    if not _possible_task_id(task_id):
        return None
    return Job.objects.select_related("result").filter(tenant_id=tenant_id, task_id=task_id).first()


def job_status_get(*, tenant_id: int, task_id: str) -> dict | None:
    """The public status of the tenant's job with this id, in one narrow query or from the process's cache; None if
    it is not the tenant's."""
    if not _possible_task_id(task_id):
        return None
    cached = local_cache.get_or_load("status", task_id, lambda: _status_load(task_id), keep=_worth_keeping)
    if cached is None or cached[0] != tenant_id:
        return None  # another tenant's job answers exactly as one that does not exist
    return dict(cached[1])  # the caller's own copy of the kept answer


def _worth_keeping(loaded: tuple[int, dict, int] | None) -> bool:
    return loaded is not None and loaded[2] <= CACHED_RESULT_MAX_CHARS


def _status_load(task_id: str) -> tuple[int, dict, int] | None:
    """(tenant id, public status, length of the stored result) of the job with this id, whichever tenant's: what the
    process's cache keeps under the task id, which every write of the job's state invalidates (jobs.results)."""
    with connection.cursor() as cursor:
        cursor.execute(_STATUS_SQL, [task_id])
        row = cursor.fetchone()
    if row is None:
        return None
    tenant_id, task_id, kind, accepted_at, canceled_at, result_status, result_payload = row
    job = Job(task_id=task_id, kind=kind, accepted_at=_datetime(accepted_at), canceled_at=canceled_at)
    status = _status(job=job, result_status=result_status, result_payload=result_payload)
    return tenant_id, status, len(result_payload or "")


def _datetime(value: datetime | str) -> datetime:
    """A datetime column as the ORM would give it (aware, UTC): SQLite's driver answers naive, or with a string."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return value.replace(tzinfo=UTC) if timezone.is_naive(value) else value


def job_state(*, job: Job) -> str:
    result = job.result
    return _state(job=job, result_status=result.status if result is not None else None)


def _state(*, job: Job, result_status: str | None) -> str:
    state = result_status or states.PENDING
    if job.canceled_at is not None and state not in FINAL_STATES:
        return states.REVOKED
    return state


def job_status(*, job: Job) -> dict:
    """The public view of a job: status, result, a short error, and progress (``{current, total, status}``)."""
    result = job.result
    return _status(
        job=job,
        result_status=result.status if result is not None else None,
        result_payload=result.result if result is not None else None,
    )


def _status(*, job: Job, result_status: str | None, result_payload: str | None) -> dict:
    state = _state(job=job, result_status=result_status)
    payload = _decode(result_payload)
    result = error = progress = None
    if state == states.SUCCESS:
        result = payload
        if isinstance(payload, dict) and isinstance(payload.get("progress"), dict):
            progress = payload["progress"]
    elif state == PROGRESS:
        progress = payload if isinstance(payload, dict) else None
    elif state in (states.FAILURE, states.RETRY):
        error = short_error(payload)
    elif state == states.REVOKED:
        error = CANCELED_ERROR
    return {
        "task_id": job.task_id,
        "status": state,
        "result": result,
        "error": error,
        "progress": progress,
        "kind": job.kind,
        "accepted_at": job.accepted_at.isoformat(),
    }


def short_error(payload) -> str | None:
    """One line about what went wrong, from Celery's stored exception; never the traceback."""
    if not isinstance(payload, dict) or "exc_type" not in payload:
        return None
    message = payload.get("exc_message")
    if payload["exc_type"] == "UnpickleableExceptionWrapper" and isinstance(message, list) and len(message) == 4:
        # Celery stores an exception it could not rebuild from its args (one with keyword-only arguments, say) as
        # (module, class name, args, repr): the args are the message
        message = message[2] or message[1]
    if isinstance(message, list | tuple):
        message = " ".join(str(part) for part in message)
    message = str(message or "").strip().splitlines()[0] if message else ""
    text = message or payload["exc_type"]
    return text[:ERROR_MAX_CHARS]


def _decode(raw: str | None):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
