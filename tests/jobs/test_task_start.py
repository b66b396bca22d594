"""What a worker does around every job's task: count the start with the STARTED write, skip canceled jobs.

The task runs through Celery's own tracer (what a worker runs for each message, not eager mode), in this thread, so
the statements it sends can be counted.
"""

import pytest
from celery import states
from celery.app.trace import build_tracer
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from jobs.models import Job
from notifications.models import OutboundEmail
from notifications.services import email_request
from notifications.tasks import send_email

# Between tasks a worker handles its connection as Django does between requests (outside any test transaction).
pytestmark = pytest.mark.django_db(transaction=True)

# STARTED upsert counting the start, BEGIN, lock the email, record it, COMMIT, SUCCESS upsert. SQLite cannot write two
# tables in one statement: there the start is counted by one more.
SEND_EMAIL_TASK_BUDGET = 6 if connection.vendor == "postgresql" else 7


def run_as_a_worker_would(task, *, task_id: str, kwargs: dict):
    """One delivery of the message: Celery's tracer with a worker's request (not eager)."""
    tracer = build_tracer(task.name, task, app=celery_app, eager=False, hostname="test-worker@localhost")
    request = {"id": task_id, "task": task.name, "kwargs": kwargs, "hostname": "test-worker@localhost",
               "delivery_info": {"routing_key": "default"}}  # fmt: skip
    return tracer(task_id, [], kwargs, request)


@pytest.fixture
def queued_email(tenant_user, monkeypatch):
    # Not published (outside a transaction the publish would run at once): this test plays the worker.
    monkeypatch.setattr("jobs.services._send", lambda job, answers=None: False)
    return email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.pk, to_email="start@example.com",
                         subject="Hi", body=".")  # fmt: skip


def test_a_send_email_task_counts_its_start_with_the_started_write_and_stays_within_its_budget(
    queued_email, smtp_server, django_assert_max_num_queries
):
    with django_assert_max_num_queries(SEND_EMAIL_TASK_BUDGET):
        run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})

    assert Job.objects.get(task_id=queued_email.job_id).run_count == 1
    result = TaskResult.objects.get(task_id=queued_email.job_id)
    assert result.status == states.SUCCESS
    assert result.date_started is not None and result.date_started <= result.date_done
    assert OutboundEmail.objects.get(pk=queued_email.pk).status == OutboundEmail.Status.SENT
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["start@example.com"]


def test_every_delivery_counts_one_start(queued_email, smtp_server):
    for _ in range(3):
        run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})

    assert Job.objects.get(task_id=queued_email.job_id).run_count == 3
    assert len(smtp_server.wait_for(1)) == 1  # the later deliveries found it sent


def test_the_started_write_tells_the_task_its_job_was_canceled_and_nothing_runs(queued_email, smtp_server):
    Job.objects.filter(task_id=queued_email.job_id).update(canceled_at=timezone.now())

    run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})

    assert TaskResult.objects.get(task_id=queued_email.job_id).status == states.REVOKED
    assert Job.objects.get(task_id=queued_email.job_id).run_count == 1
    assert OutboundEmail.objects.get(pk=queued_email.pk).status == OutboundEmail.Status.QUEUED
    assert smtp_server.messages == []


def test_a_task_without_a_job_row_runs_and_counts_nothing(queued_email, smtp_server):
    # A message published by hand (no Job row under its id): the task still runs, no Job is touched.
    run_as_a_worker_would(send_email, task_id="no-job-has-this-id", kwargs={"email_id": queued_email.pk})

    assert TaskResult.objects.get(task_id="no-job-has-this-id").status == states.SUCCESS
    assert Job.objects.get(task_id=queued_email.job_id).run_count == 0


def test_retries_before_a_republish_are_not_crashes_and_unfinished_starts_are(queued_email, smtp_server, settings):
    # An email that was tried five times (each ended in RETRY), then came back with Celery's retry count at 0 again
    # (the sweeper republishes a job whose worker died while it waited for its next try): it is sent, not failed as a
    # poison pill. A start that finds the one before it unfinished (STARTED: its worker died) counts one crash.
    Job.objects.filter(task_id=queued_email.job_id).update(run_count=5)
    TaskResult.objects.create(task_id=queued_email.job_id, status=states.RETRY)

    run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})

    assert TaskResult.objects.get(task_id=queued_email.job_id).status == states.SUCCESS
    assert [m["To"] for m in smtp_server.wait_for(1)] == ["start@example.com"]
    assert Job.objects.values_list("run_count", "crash_count").get(task_id=queued_email.job_id) == (6, 0)

    TaskResult.objects.filter(task_id=queued_email.job_id).update(status=states.STARTED)
    run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})
    assert Job.objects.values_list("run_count", "crash_count").get(task_id=queued_email.job_id) == (7, 1)


def test_a_job_whose_starts_keep_dying_is_failed_as_a_poison_pill(queued_email, smtp_server, settings):
    Job.objects.filter(task_id=queued_email.job_id).update(
        run_count=4, crash_count=settings.JOBS_MAX_CRASH_REDELIVERIES
    )
    TaskResult.objects.create(task_id=queued_email.job_id, status=states.STARTED)  # the last start died too

    run_as_a_worker_would(send_email, task_id=queued_email.job_id, kwargs={"email_id": queued_email.pk})

    result = TaskResult.objects.get(task_id=queued_email.job_id)
    assert result.status == states.FAILURE
    assert "Stopped after 5 deliveries: the worker process died 4 times" in result.result
    assert smtp_server.messages == []


def test_a_retry_is_stored_before_its_message_goes_out_so_a_quick_pickup_is_no_crash(tenant_user, monkeypatch):
    # Celery stores RETRY only after it published the retry's message; a pool process taking that message at once
    # would find this run still STARTED and count a crash. What was stored when the message left is what it finds.
    from celery.signals import before_task_publish
    from django.db import transaction

    from jobs.services import job_enqueue
    from tests.chaos.tasks import retry_at_once

    monkeypatch.setattr("jobs.services._send", lambda job, answers=None: False)  # this test plays the worker
    with transaction.atomic():
        job = job_enqueue(task_name="tests.retry_at_once", kind="test_retry", tenant_id=tenant_user.tenant_id)
    stored_when_published = []

    def look(sender=None, headers=None, **kwargs):
        if headers and headers.get("id") == job.task_id:
            stored_when_published.append(TaskResult.objects.get(task_id=job.task_id).status)

    before_task_publish.connect(look, weak=False)
    try:
        run_as_a_worker_would(retry_at_once, task_id=job.task_id, kwargs={})
    finally:
        before_task_publish.disconnect(look)
        celery_app.control.purge()  # the retry's message: nobody here consumes it

    assert stored_when_published == [states.RETRY]
    assert Job.objects.values_list("run_count", "crash_count").get(task_id=job.task_id) == (1, 0)
