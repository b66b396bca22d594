"""Enqueue, publish, relay and cancel: the only way work reaches the broker."""

import logging
import random
import secrets
import threading
import time
import uuid
from contextlib import nullcontext
from datetime import timedelta
from functools import cache

from celery import current_app, states
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, Error, connection, connections, transaction
from django.db.models import Field, Model
from django.utils import timezone
from django.utils.module_loading import import_string
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from jobs import broker
from jobs.localcache import invalidate
from jobs.models import Job
from jobs.redis_client import redis_backing_off, redis_failed
from jobs.sql import insert_fields, insert_values, prepared_cursor

logger = logging.getLogger(__name__)

# What a publish raises when the broker cannot be reached.
BROKER_ERRORS = (KombuError, RedisError, OSError)


class JobNotCancellable(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(f"The task is {status} and can no longer be canceled.")
        self.status = status


class JobCanceled(Exception):
    """Raised in a running job whose cancel it noticed: ``JobTask`` records it REVOKED and stores no result."""


def job_new_id() -> str:
    """A fresh public id, a UUID version 7 (RFC 9562): the time in milliseconds, then 74 random bits; domain rows that
    point at their Job take it before the Job row is written.

    Time-ordered, so each new id lands at the right-hand end of the indexes on it (the job's, the domain row's and
    the result's task id) rather than on a random page of each: with a million jobs, random UUIDs made every enqueue
    touch pages not in memory, each written whole to the WAL the first time after a checkpoint (bench/: the scale
    figure). The random bits keep ids unguessable enough; access is checked by tenant anyway.
    """
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | 0x7 << 76 | secrets.randbits(12) << 64 | 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def job_enqueue(
    *,
    task_name: str,
    kind: str,
    tenant_id: int,
    user_id: int | None = None,
    kwargs: dict | None = None,
    task_id: str | None = None,
) -> Job:
    """Record a Job in the caller's transaction; publish it to the broker only once that transaction commits.

    If the transaction rolls back, neither the Job nor the message exists. If the broker is down at commit, the Job
    is marked unpublished and ``jobs_publish_pending`` (run by beat and at worker start) publishes it later.
    """
    job = Job.objects.create(
        task_id=task_id or job_new_id(),
        tenant_id=tenant_id,
        user_id=user_id,
        kind=kind,
        task_name=task_name,
        kwargs=kwargs or {},
        published_at=timezone.now(),  # see _publish_accepted
        publish_count=1,
    )
    transaction.on_commit(lambda: _publish_accepted(job))
    return job


def job_enqueue_with(
    row: Model, *, pk_kwarg: str, task_name: str, kind: str, tenant_id: int, user_id: int | None = None
) -> Job:
    """Insert a new domain row (an email, a report: a model with a ``job`` foreign key to ``Job.task_id``) and the Job
    that works on it, whose task gets the row's primary key as ``pk_kwarg``; publish once that commits.

    On PostgreSQL both rows go in one statement (one round trip instead of BEGIN, two INSERTs and COMMIT: this is the
    enqueue hot path), prepared once per connection (jobs.sql.prepared_cursor); elsewhere in one transaction. Inside
    the caller's transaction either way, under a savepoint, so a failed insert (say a unique key) leaves the caller's
    transaction usable.
    """
    row.job_id = job_new_id()
    # The connection itself, not django.db.connection: each attribute read through that proxy is a thread-local
    # lookup, and the values' conversions below read it about 25 times an enqueue.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with transaction.atomic():
            row.save(force_insert=True)
            return job_enqueue(task_name=task_name, kind=kind, tenant_id=tenant_id, user_id=user_id,
                               kwargs={pk_kwarg: row.pk}, task_id=row.job_id)  # fmt: skip
    job = Job(task_id=row.job_id, tenant_id=tenant_id, user_id=user_id, kind=kind, task_name=task_name,
              published_at=timezone.now(), publish_count=1)  # fmt: skip  # see _publish_accepted
    with transaction.atomic() if db.in_atomic_block else nullcontext():
        _insert_with_job(row, job, pk_kwarg=pk_kwarg, connection=db)
    transaction.on_commit(lambda: _publish_accepted(job))
    return job


def _insert_with_job(row: Model, job: Job, *, pk_kwarg: str, connection) -> None:
    sql, row_fields, job_fields = _insert_with_job_sql(type(row))
    values = [
        *insert_values(row, row_fields, connection=connection),
        *insert_values(job, job_fields, connection=connection),
    ]
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, [*values, pk_kwarg])
        job.pk, row.pk = cursor.fetchone()
    job.kwargs = {pk_kwarg: row.pk}
    for instance in (row, job):
        instance._state.adding = False
        instance._state.db = connection.alias


@cache
def _insert_with_job_sql(row_model: type[Model]) -> tuple[str, tuple[Field, ...], tuple[Field, ...]]:
    """The PostgreSQL statement inserting a ``row_model`` row and its Job (the Job's ``kwargs`` made of the row's new
    primary key), and the fields whose values it takes, in order: built once per model."""
    row_fields, job_fields = insert_fields(row_model), insert_fields(Job, leave_out=("kwargs",))
    quote = connection.ops.quote_name
    row_table, job_table = quote(row_model._meta.db_table), quote(Job._meta.db_table)
    row_pk, job_pk = quote(row_model._meta.pk.column), quote(Job._meta.pk.column)
    kwargs = quote(Job._meta.get_field("kwargs").column)
    sql = (
        f"WITH domain AS (INSERT INTO {row_table} ({', '.join(quote(f.column) for f in row_fields)}) "
        f"VALUES ({', '.join(['%s'] * len(row_fields))}) RETURNING {row_pk}) "
        f"INSERT INTO {job_table} ({', '.join(quote(f.column) for f in job_fields)}, {kwargs}) "
        # the key cast: a prepared statement's parameters are bound by the server, which must know each one's type
        f"SELECT {', '.join(['%s'] * len(job_fields))}, jsonb_build_object(%s::text, domain.{row_pk}) FROM domain "
        f"RETURNING {job_pk}, (SELECT {row_pk} FROM domain)"
    )
    return sql, row_fields, job_fields


def job_enqueue_again(*, job: Job, user_id: int | None) -> Job:
    """A new job doing what ``job`` did (same task, arguments and tenant): how a failed job is retried.

    Call it in the transaction that points the job's domain row at the new job.
    """
    return job_enqueue(
        task_name=job.task_name, kind=job.kind, tenant_id=job.tenant_id, user_id=user_id, kwargs=job.kwargs
    )


def job_publish(*, job: Job) -> bool:
    """Hand the job to the broker under its own task id, then mark it published; True when the broker took it."""
    if not _send(job):
        return False
    try:
        with connection.cursor() as cursor:  # written out: once per job the relay or the sweeper publishes
            cursor.execute(
                f"UPDATE {Job._meta.db_table} SET published_at = %s, publish_count = publish_count + 1 WHERE id = %s",
                [Job._meta.get_field("published_at").get_db_prep_save(timezone.now(), connection), job.pk],
            )
    except DatabaseError:
        if connection.in_atomic_block:
            raise  # the relay's transaction: it cannot go on, and rolls back its marks
        logger.warning("Job %s (tenant %s) published but not marked so; it may be published again (it runs once)",
                       job.task_id, job.tenant_id, exc_info=True)  # fmt: skip
    return True


def _publish_accepted(job: Job) -> None:
    """Publish a job just committed, which was written already marked published (once, now): unmark it for the relay
    if the broker does not take it. In a web request, the broker's answer is read once the response has been sent
    (publish_answers_read).

    Marked up front, because a second statement and commit after the publish, on every enqueue, cost more CPU than
    the rest of our enqueue together (0.8 ms in the web process and 0.4 ms in PostgreSQL a request: bench/). The one
    case this leaves to the slower stranded-job sweeper (jobs.recovery: about a minute and a half at the defaults),
    not the relay (seconds): a web process that dies between the commit and the publish's answer.
    """
    answers = getattr(_web_request, "answers", None)
    if answers:  # an earlier publish of this request (an admin action's, say): its answer first, one connection held
        _read_answers(answers)
    if not _send(job, answers=answers):
        _unmark(job)


def _unmark(job: Job) -> None:
    """Leave a job marked published, which the broker did not take, to the relay."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Job._meta.db_table} SET published_at = NULL, publish_count = publish_count - 1 WHERE id = %s",
                [job.pk],
            )
    except Error:  # DatabaseError, or InterfaceError (a connection already closed)
        # After the commit: the job is accepted, so the request must not fail (a client would send it again). Left
        # marked, it is one the sweeper finds in no queue and publishes.
        logger.warning("Job %s (tenant %s) not published and not unmarked; the sweeper will publish it",
                       job.task_id, job.tenant_id, exc_info=True)  # fmt: skip
        return
    job.published_at, job.publish_count = None, 0


def _send(job: Job, answers: list | None = None) -> bool:
    """Put the job's message on the broker; False, logged, when the broker cannot take it now. Given a web request's
    ``answers``, do not wait for the broker to answer: what reads its answer is added to them."""
    broker_url = current_app.conf.broker_write_url  # where publishes go (broker_url unless set apart)
    if redis_backing_off(broker_url):  # web processes only (jobs.redis_client): it failed moments ago
        logger.warning("Broker failed moments ago; job %s (tenant %s) left for the relay", job.task_id, job.tenant_id)
        return False
    try:
        # No time limits in the message: the worker applies its own (REPORTS_SOFT_TIME_LIMIT in the worker's
        # environment, say). Celery would otherwise copy those of the task as this process registered it.
        confirm = broker.publish(current_app, task_name=job.task_name, task_id=job.task_id, kwargs=job.kwargs,
                                 url=broker_url, unconfirmed=answers is not None)  # fmt: skip
    except BROKER_ERRORS:
        redis_failed(broker_url)
        logger.warning("Broker unreachable; job %s (tenant %s) left for the relay", job.task_id, job.tenant_id)
        return False
    if confirm is not None:
        answers.append((job, confirm, broker_url))
    return True


# A web request's publishes whose broker answers are still to be read: set apart when a request starts, read when its
# response has been sent (Django's request_started and request_finished, connected in jobs.apps).
_web_request = threading.local()


def publish_answers_deferred(**kwargs) -> None:
    """A web request starts: its publishes will not wait for the broker's answer, but leave it to be read once the
    response has been sent. That is a round trip to Redis fewer in every enqueue's answer (bench/); the job is
    accepted when it is committed, and a publish the broker turns out not to have taken is the relay's (seconds)."""
    publish_answers_read()  # any a server left unread (a response it did not close)
    _web_request.answers = []


def publish_answers_read(**kwargs) -> None:
    """A web request's response has been sent: read the broker's answers to its publishes. A job the broker refused,
    or did not answer for (a dropped connection, a timeout), is unmarked for the relay, as when a publish fails at once
    (a push that did reach Redis is then delivered twice, and runs once)."""
    answers, _web_request.answers = getattr(_web_request, "answers", None), None
    if answers:
        _read_answers(answers)


def _read_answers(answers: list) -> None:
    while answers:
        job, confirm, broker_url = answers.pop()
        try:
            confirm()
        except BROKER_ERRORS:
            redis_failed(broker_url)  # a request's later publishes go to the relay at once (jobs.redis_client)
            logger.warning("Broker did not take job %s (tenant %s); left for the relay", job.task_id, job.tenant_id,
                           exc_info=True)  # fmt: skip
            _unmark(job)


def job_run_start(*, task_id: str) -> tuple[int, int, bool] | None:
    """Count one more start of the job, and a crash when the start before it never ended; return (starts so far,
    crashes so far, canceled?), or None when no Job has this id. Call it before this start's STARTED is stored."""
    with connection.cursor() as cursor:
        cursor.execute(job_run_start_sql(connection), [task_id, task_id])
        row = cursor.fetchone()
    return (row[0], row[1], row[2] is not None) if row else None


def job_run_start_sql(connection) -> str:
    """The UPDATE that counts a start (parameters: the task id twice), returning run_count, crash_count, canceled_at.

    A crash is a start that finds the job's stored state still STARTED or PROGRESS: the run before it ended in no
    state at all (its worker process or the whole worker died), where a retry stores RETRY and an outcome its own.
    Counted this way, retries before a redelivery are not crashes, however the message came back (Celery's retry,
    the worker's reject on a lost process, or the sweeper's republish, which starts Celery's retry count at 0 again).
    """
    from django_celery_results.models import TaskResult

    from jobs.selectors import PROGRESS  # selectors import services' neighbours; keep the cycle local

    quote = connection.ops.quote_name
    result_table = quote(TaskResult._meta.db_table)
    return (
        f"UPDATE {quote(Job._meta.db_table)} SET run_count = run_count + 1, crash_count = crash_count + "
        f"(SELECT COUNT(*) FROM {result_table} r WHERE r.task_id = %s AND r.status IN ('{states.STARTED}', "
        f"'{PROGRESS}')) WHERE task_id = %s "
        "RETURNING run_count, crash_count, canceled_at"  # not "canceled_at IS NOT NULL": SQLite 3.40 gets that wrong
    )


def jobs_publish_pending(*, grace: timedelta | None = None, limit: int = 500) -> int:
    """Publish jobs whose after-commit publish never happened; return how many the broker took.

    Younger jobs are left alone for ``grace``: their own publish may still be in flight. Row locks (skipped when
    taken) keep two relays from publishing the same job.
    """
    if grace is None:
        grace = timedelta(seconds=settings.JOBS_RELAY_GRACE_SECONDS)
    published = 0
    with transaction.atomic():
        pending = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, canceled_at__isnull=True, accepted_at__lte=timezone.now() - grace)
            .order_by("accepted_at")[:limit]
        )
        for job in pending:
            if not job_publish(job=job):
                break  # the broker is still down; the next run tries again
            published += 1
    if published:
        logger.info("Relay published %d pending job(s)", published)
    return published


# kind (or "prefix*") -> dotted path of ``hook(*, job: Job) -> None``, run in the cancel's transaction to mark the
# job's domain row (an email stays "queued" otherwise) or refuse with JobNotCancellable (a report whose file is already
# recorded); settings.JOBS_CANCEL_HOOKS adds to or overrides these.
DEFAULT_CANCEL_HOOKS = {
    "send_email": "notifications.services.email_cancel",
    "report_*": "reports.services.report_cancel",
    "batch_process_users": "reports.services.report_cancel",
}

# Kinds (or "prefix*") that may also be canceled while they run; settings.JOBS_CANCEL_RUNNING_KINDS replaces this.
# Their tasks must leave nothing half-done when stopped at any point: a report stores its file only once it is whole.
# Anything else answers 409 once started: an email the mail server has taken cannot be unsent.
DEFAULT_CANCEL_RUNNING_KINDS = ("report_*", "batch_process_users")


def kind_key(keys, kind: str) -> str | None:
    """The entry of ``keys`` for ``kind``: ``kind`` itself, else the longest ``"prefix*"`` entry that matches."""
    if kind in keys:
        return kind
    prefixes = sorted((key for key in keys if key.endswith("*") and kind.startswith(key[:-1])), key=len)
    return prefixes[-1] if prefixes else None


def kind_hook(hooks: dict[str, str], kind: str):
    """The hook in ``hooks`` for ``kind`` (``kind_key``), imported; None when there is none."""
    key = kind_key(hooks, kind)
    return import_string(hooks[key]) if key else None


def job_cancel(*, job: Job, by_user_id: int | None) -> Job:
    """Cancel a job: its status reads REVOKED from now on, unless it finishes first.

    A job that has not started (PENDING, RETRY) never runs. A running one (STARTED, PROGRESS) can be canceled when its
    kind allows it (``DEFAULT_CANCEL_RUNNING_KINDS``): its task asks between its steps (``JobTask.raise_if_canceled``),
    stops, stores nothing and records REVOKED itself. Anything else raises JobNotCancellable. The kind's cancel hook
    (``DEFAULT_CANCEL_HOOKS``) marks its domain row in the cancel's transaction.

    A running task is never sent a signal (Celery's ``revoke(terminate=True)``): that signals a pool process, which may
    have moved on to another job by the time it lands, and the worker records REVOKED over whatever the task does.
    """
    from jobs.selectors import PROGRESS, job_state  # selectors import services' neighbours; keep the cycle local

    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("result").get(pk=job.pk)
        state = job_state(job=job)
        running = state in (states.STARTED, PROGRESS)
        if not (state in (states.PENDING, states.RETRY) or running and job_cancellable_while_running(job.kind)):
            raise JobNotCancellable(state)
        job.canceled_at = timezone.now()
        job.canceled_by_id = by_user_id
        job.save(update_fields=["canceled_at", "canceled_by"])
        hook = kind_hook({**DEFAULT_CANCEL_HOOKS, **getattr(settings, "JOBS_CANCEL_HOOKS", {})}, job.kind)
        if hook is not None:
            hook(job=job)
        invalidate("status", job.task_id)  # web processes keep its status in memory (jobs.localcache)
    if not running:
        # REVOKED on its result row (for Celery's tools; the status reads REVOKED already), written after the commit:
        # a worker's STARTED write locks the result row, then the job's, so holding the job's row here could deadlock.
        current_app.backend.mark_as_revoked(job.task_id, reason="canceled")
        try:
            current_app.control.revoke(job.task_id)
        except BROKER_ERRORS:
            # Workers also check canceled_at before running a job, so a lost broadcast changes nothing.
            logger.warning("Could not broadcast the revoke of %s; the worker-side check will skip it", job.task_id)
    logger.info("Job %s (tenant %s, %s) canceled by user %s", job.task_id, job.tenant_id, state, by_user_id)
    return job


def job_cancellable_while_running(kind: str) -> bool:
    return kind_key(getattr(settings, "JOBS_CANCEL_RUNNING_KINDS", DEFAULT_CANCEL_RUNNING_KINDS), kind) is not None


def job_canceled(*, task_id: str, lock: bool = False) -> bool:
    """Whether the job with this id was canceled: what a running job asks now and then.

    With ``lock`` (inside a transaction) the job's row stays locked until that transaction ends, whatever the answer,
    as job_cancel locks it: a cancel then falls wholly before or after what the transaction records.
    """
    jobs = Job.objects.filter(task_id=task_id)
    if lock:
        jobs = jobs.select_for_update()
    return jobs.values_list("canceled_at", flat=True).first() is not None


def retry_countdown(*, retries: int, base: float, cap: float, jitter: float = 0.25) -> float:
    """Exponential backoff, ``base·2^retries`` capped at ``cap``, shortened by up to ``jitter`` at random.

    The jitter only ever shortens a delay, so successive delays still grow: they spread out a herd of retries
    without letting a later retry come sooner than an earlier one.
    """
    delay = min(cap, base * 2**retries)
    return delay * (1 - jitter * random.random())  # noqa: S311 - spreading load, not security
