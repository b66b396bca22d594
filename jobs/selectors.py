"""Tenant-scoped reads of jobs and their state. "Not yours" and "does not exist" both come back as None."""

import json

from celery import states

from jobs.models import Job

FINAL_STATES = frozenset(states.READY_STATES)  # SUCCESS, FAILURE, REVOKED
PROGRESS = "PROGRESS"  # the custom state of tasks that report how far they are
ERROR_MAX_CHARS = 300


def job_get(*, tenant_id: int, task_id: str) -> Job | None:
    """The tenant's job with this public id, its result row joined in the same query."""
    if len(task_id) > 255 or "\x00" in task_id:
        return None  # cannot be a task id; PostgreSQL would refuse the NUL outright
    return Job.objects.select_related("result").filter(tenant_id=tenant_id, task_id=task_id).first()


def job_state(*, job: Job) -> str:
    result = job.result
    state = result.status if result is not None else states.PENDING
    if job.canceled_at is not None and state not in FINAL_STATES:
        return states.REVOKED
    return state


def job_status(*, job: Job) -> dict:
    """The public view of a job: status, result, a short error, and progress (``{current, total, status}``)."""
    state = job_state(job=job)
    payload = _decode(job.result.result) if job.result is not None else None
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
        error = "Canceled."
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
