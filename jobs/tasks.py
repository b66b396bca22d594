import logging

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import task_postrun, task_prerun, worker_init, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from jobs import control  # noqa: F401 - registers the workers' remote-control command
from jobs.recovery import jobs_recover_stranded
from jobs.selectors import PROGRESS
from jobs.services import JobCanceled, job_canceled, job_run_start, jobs_publish_pending, retry_countdown

logger = logging.getLogger(__name__)

DATABASE_DOWN = (OperationalError, InterfaceError)
_NOT_COUNTED = object()


class WorkerCrashLoop(Exception):
    """The job's worker process died every time it ran it (a poison pill); it will not be delivered again."""


class JobTask(Task):
    """Base for every task that runs a Job: skips canceled jobs, stops poison pills, reports progress in one shape."""

    # Our result backend counts the start with the STARTED write and leaves (starts, crashes, canceled?) on the
    # request as ``job_run`` (jobs.results); otherwise (track_started off, another backend) the task counts it, and
    # then sees a crash only where the dead run had stored PROGRESS (nothing stored STARTED).
    counts_job_runs = True

    def __call__(self, *args, **kwargs):
        try:
            return self._run_job(*args, **kwargs)
        except JobCanceled:
            # Canceled while it ran (jobs.services.job_cancel), and stopped by raise_if_canceled: the outcome is that.
            self.backend.mark_as_revoked(self.request.id, reason="canceled", request=self.request)
            logger.info("Job %s stopped: canceled while it ran", self.request.id)
            raise Ignore() from None
        except DATABASE_DOWN as exc:
            # The database went away under us: nothing was committed, so running again later is safe.
            countdown = retry_countdown(retries=self.request.retries, base=settings.JOBS_DB_RETRY_BASE_DELAY, cap=300)
            logger.warning("Job %s: database unavailable (%s); retrying in %.0fs", self.request.id, exc, countdown)
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.JOBS_DB_MAX_RETRIES) from exc

    def _run_job(self, *args, **kwargs):
        task_id = self.request.id
        run = None
        if task_id and not self.request.is_eager:
            run = self.request.get("job_run", _NOT_COUNTED)
            if run is _NOT_COUNTED:
                run = job_run_start(task_id=task_id)
        if run is not None:
            run_count, crashes, canceled = run
            if canceled:
                # STARTED was already written by track_started; put the canceled state back and run nothing.
                self.backend.mark_as_revoked(task_id, reason="canceled", request=self.request)
                logger.info("Skipping canceled job %s", task_id)
                raise Ignore()
            # A crash: a start that found the one before it unfinished (jobs.services.job_run_start_sql).
            if crashes > settings.JOBS_MAX_CRASH_REDELIVERIES:
                error = WorkerCrashLoop(
                    f"Stopped after {run_count} deliveries: the worker process died {crashes} times running this job."
                )
                self.backend.mark_as_failure(task_id, error, request=self.request)
                logger.error("Job %s is a poison pill (%d starts); marked failed", task_id, run_count)
                raise Ignore()
        return super().__call__(*args, **kwargs)

    def retry(self, *args, **kwargs):
        """Celery's retry, with RETRY stored before the retry's message goes out (Celery stores it after): a pool
        process that takes the message at once must not find this start still STARTED and count it as a crash
        (jobs.services.job_run_start_sql)."""
        if self.request.id and not self.request.is_eager:
            exc = kwargs.get("exc")
            try:
                self.backend.mark_as_retry(self.request.id, exc if exc is not None else Exception("Retrying"),
                                           request=self.request)  # fmt: skip
            except DATABASE_DOWN:
                pass  # Celery tries again after the publish; a start that then finds STARTED counts one crash
        return super().retry(*args, **kwargs)

    def progress(self, *, current: int, total: int, status: str = "") -> None:
        self.update_state(state=PROGRESS, meta={"current": current, "total": total, "status": status})

    def raise_if_canceled(self) -> None:
        """Raise JobCanceled if this job was canceled while it runs (jobs.services.job_cancel): one small query, for
        a task to ask between its steps."""
        task_id = self.request.id
        if task_id and not self.request.is_eager and job_canceled(task_id=task_id):
            raise JobCanceled(f"Job {task_id} was canceled.")


@shared_task(name="jobs.publish_unpublished", ignore_result=True, time_limit=120, soft_time_limit=90)
def publish_unpublished_jobs() -> int:
    return jobs_publish_pending()


@shared_task(name="jobs.recover_stranded", ignore_result=True, time_limit=120, soft_time_limit=90)
def recover_stranded_jobs() -> int:
    return len(jobs_recover_stranded())


@task_prerun.connect
@task_postrun.connect
def _close_old_database_connections(task=None, **kwargs) -> None:
    # Between tasks what Django does between requests: drop a connection that broke or outlived CONN_MAX_AGE, keep
    # the rest (settings.CELERY_DB_REUSE_MAX). Eager tasks run inside their caller's transaction: leave those alone.
    if task is not None and not task.request.is_eager:
        close_old_connections()


@worker_init.connect
def _survive_closing_a_lost_broker_connection(**kwargs) -> None:
    """Celery 5.7.0 (with kombu 5.7.0) closes the broker connection it just lost by putting the messages the worker
    held back on it; when Redis is still down that can raise AttributeError (its transport's client already let go),
    which nothing catches, and the worker exits ("Unrecoverable error"), seen in an outside test when Redis shut down
    under load. Ignore it there, as the connection errors are: the messages stay in Redis's unacknowledged set (its
    visibility timeout, and the sweeper sooner, put them back), and the consumer reconnects."""
    from celery.worker.consumer import consumer
    from kombu.common import ignore_errors

    def close_ignoring_errors(connection, fun=None, *args, **kwargs):
        if fun is None:
            return ignore_errors(connection)
        try:
            return ignore_errors(connection, fun, *args, **kwargs)
        except AttributeError:
            logger.warning("Closing the lost broker connection failed; the messages it held stay in Redis for the "
                           "sweeper", exc_info=True)  # fmt: skip
            return None

    consumer.ignore_errors = close_ignoring_errors


@worker_ready.connect
def _publish_pending_on_worker_start(sender, **kwargs) -> None:
    # A worker coming up is the moment the broker is known to answer again: flush what was left unpublished.
    publish_unpublished_jobs.apply_async()


@shared_task(name="jobs.cleanup_old_logs", time_limit=30 * 60, soft_time_limit=25 * 60)
def cleanup_old_logs() -> dict:
    """Beat's "cleanup-old-logs": prune what is past retention (jobs.maintenance); batches make re-runs safe."""
    from jobs.maintenance import old_logs_cleanup

    return old_logs_cleanup()
