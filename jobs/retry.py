"""Retrying a failed job: used by the admin's "retry" action and ``manage.py retry_failed``.

A retry always makes a NEW job (a new task id): the failed one keeps its record and the status API keeps answering
for it. Tasks guard on their domain row's status (a failed email row is never sent again), so re-publishing the old
message would do nothing; a kind whose task guards that way registers a retry hook in ``JOBS_RETRY_HOOKS`` that puts
the domain row back in a state the task will act on and enqueues the new job in the same transaction. Kinds without
a hook are re-enqueued as they were (same task, kwargs, tenant and user).
"""

import logging
from collections.abc import Callable

from celery import states
from django.conf import settings
from django.db import transaction

from jobs.models import Job
from jobs.selectors import job_state
from jobs.services import job_enqueue, kind_hook

logger = logging.getLogger(__name__)

# kind (or "prefix*") -> dotted path of ``hook(*, job: Job, by_user_id: int | None) -> Job`` returning the new job;
# settings.JOBS_RETRY_HOOKS adds to or overrides these. A hook runs in ``retry_failed --dry-run`` too, in a transaction
# that is rolled back: anything it does outside the database (files, Redis, messages) must wait for on_commit.
DEFAULT_RETRY_HOOKS = {
    "send_email": "notifications.services.email_retry",
    "report_*": "reports.services.report_retry",
    "batch_process_users": "reports.services.report_retry",
    "process_webhook": "webhooks.services.webhook_event_retry",
}


class JobNotRetryable(Exception):
    pass


def retry_hook(kind: str) -> Callable[..., Job] | None:
    """The hook for ``kind``: an exact entry, else the longest ``"prefix*"`` entry that matches (``"report_*"``)."""
    return kind_hook({**DEFAULT_RETRY_HOOKS, **getattr(settings, "JOBS_RETRY_HOOKS", {})}, kind)


def job_retried_by(*, job: Job) -> Job | None:
    """The later job that retried this one (the same task with the same arguments), if any."""
    return (
        Job.objects.filter(
            tenant_id=job.tenant_id, task_name=job.task_name, kwargs=job.kwargs, accepted_at__gt=job.accepted_at
        )
        .order_by("accepted_at")
        .first()
    )


def job_retry(*, job: Job, by_user_id: int | None) -> Job:
    """Enqueue a new job doing what this failed one should have done; return it.

    Raises JobNotRetryable for a job that did not fail, or that was already retried (so running the command twice
    retries nothing twice).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("result").get(pk=job.pk)
        state = job_state(job=job)
        if state != states.FAILURE:
            raise JobNotRetryable(f"The job is {state}; only failed jobs are retried.")
        retried = job_retried_by(job=job)
        if retried is not None:
            raise JobNotRetryable(f"Already retried as {retried.task_id}.")
        hook = retry_hook(job.kind)
        if hook is not None:
            new_job = hook(job=job, by_user_id=by_user_id)
        else:
            new_job = job_enqueue(
                task_name=job.task_name, kind=job.kind, tenant_id=job.tenant_id, user_id=job.user_id, kwargs=job.kwargs
            )
    # On commit: a dry run (below) goes through here too, and must not log a retry that never happened.
    transaction.on_commit(lambda: logger.info(
        "Job %s (%s, tenant %s) retried as %s by user %s",
        job.task_id, job.kind, job.tenant_id, new_job.task_id, by_user_id,
    ))  # fmt: skip
    return new_job


def job_retry_dry_run(*, job: Job) -> None:
    """Raise JobNotRetryable exactly when job_retry would; change nothing.

    It is job_retry itself (its checks and the kind's hook with its own) in a transaction that is rolled back, so the
    answer cannot drift from a real run's; enqueueing publishes only on commit, so no message is sent either.
    """
    with transaction.atomic():
        job_retry(job=job, by_user_id=None)
        transaction.set_rollback(True)
