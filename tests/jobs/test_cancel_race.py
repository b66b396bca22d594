"""A cancel racing a worker: its STARTED write (found from outside: 3 in about 220 tries ended FAILURE, "deadlock
detected"; the worker's write takes the result row, then the job's, so the cancel must not wait for the result row
while it holds the job's), and a report's file being recorded (the two take the job's row, so one comes first)."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models import F
from django_celery_results.models import TaskResult

from jobs.models import Job
from jobs.services import JobNotCancellable, job_cancel, job_canceled
from notifications.services import email_request
from reports.models import Report
from reports.services import report_request

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time: no row locks"),
]


class Holding:
    """In another thread (so another connection), run ``first`` in a transaction, hold what it locked for half a
    second, run ``then`` and commit; the test acts meanwhile. Exceptions met there end up in ``errors``."""

    def __init__(self, first, then) -> None:
        self.errors: list[Exception] = []
        self._holding = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(first, then))

    def _run(self, first, then) -> None:
        try:
            with transaction.atomic():
                first()
                self._holding.set()
                time.sleep(0.5)
                then()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
        finally:
            self._holding.set()
            connections.close_all()

    def __enter__(self) -> "Holding":
        self._thread.start()
        assert self._holding.wait(10)
        return self

    def __exit__(self, *exc_info) -> None:
        self._thread.join(10)  # before the test's tables are emptied


def test_a_cancel_racing_the_workers_started_write_does_not_deadlock(tenant_user):
    # given an accepted email whose worker is writing STARTED: it holds the result row and is about to count the start
    email = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, to_email="a@b.io", subject="s",
                          body="b")  # fmt: skip
    job = Job.objects.get(task_id=email.job_id)
    started = Holding(
        lambda: TaskResult.objects.create(task_id=job.task_id, status="STARTED", task_name="notifications.send_email"),
        lambda: Job.objects.filter(pk=job.pk).update(run_count=F("run_count") + 1),
    )

    # when the job is canceled at that moment
    errors = []
    with started:
        try:
            job_cancel(job=job, by_user_id=tenant_user.id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # then neither side fails, and the job ends canceled and REVOKED
    assert errors == started.errors == []
    job.refresh_from_db()
    assert job.canceled_at is not None and job.run_count == 1
    assert TaskResult.objects.get(task_id=job.task_id).status == "REVOKED"


def test_a_report_being_recorded_holds_off_a_cancel_until_it_is_recorded_and_the_cancel_is_refused(tenant_user):
    # given a running report whose task is recording its file: it holds the job's row as reports.services does
    report = report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")
    TaskResult.objects.create(task_id=report.job_id, status="PROGRESS", task_name="reports.generate_report")
    Report.objects.filter(pk=report.pk).update(status=Report.Status.GENERATING)

    def lock_the_job():
        assert not job_canceled(task_id=report.job_id, lock=True)

    recording = Holding(
        lock_the_job, lambda: Report.objects.filter(pk=report.pk).update(status=Report.Status.COMPLETED)
    )

    # when the report is canceled at that moment, then the cancel waits for the recording and is refused
    with recording, pytest.raises(JobNotCancellable) as refused:
        job_cancel(job=Job.objects.get(task_id=report.job_id), by_user_id=tenant_user.id)
    assert recording.errors == [] and refused.value.status == "SUCCESS"
    assert Job.objects.get(task_id=report.job_id).canceled_at is None
    assert Report.objects.get(pk=report.pk).status == Report.Status.COMPLETED
