"""queue_status and retry_failed against a live worker, Redis and SMTP server."""

import logging
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from config.celery import app as celery_app
from jobs.models import Job
from jobs.ops import queue_depths
from notifications.models import OutboundEmail
from tests.conftest import wait_for_status
from tests.schedules.conftest import finished_job

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def row(output: str, first: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [first])


def test_queue_status_shows_the_worker_the_queue_depths_and_recent_failures(worker_process):
    # given three messages waiting in the reports queue and a failed email job today
    for _ in range(3):
        celery_app.send_task("jobs.publish_unpublished", queue="reports")
    finished_job(kind="send_email", status="FAILURE")

    before = run("queue_status")

    assert "Workers online: 0" in before
    assert row(before, "reports") == ["reports", "3"]
    assert row(before, "default") == ["default", "0"]
    assert "Failures in the last 24 h: 1" in before and row(before, "send_email") == ["send_email", "1"]

    # when a worker comes up, it drains the queue and holds a task due in a minute
    worker = worker_process().start()
    celery_app.send_task("jobs.publish_unpublished", countdown=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = run("queue_status")
        if "Workers online: 1" in after and row(after, "reports")[1] == "0" and "scheduled  " in after:
            break
        time.sleep(0.5)

    assert "Workers online: 1" in after, worker.log()
    assert worker.name.split("@")[0] in after
    assert row(after, "reports") == ["reports", "0"]
    assert row(after, "scheduled")[2] == "jobs.publish_unpublished"


def test_retry_failed_puts_a_failed_email_back_and_it_is_sent(celery_worker, smtp_server, api):
    # given an email the mail server refused for good
    smtp_server.refusals = ["550 5.1.1 No such user here"]
    payload = {"to_email": "ada@example.com", "subject": "Hi", "body": "x"}
    task_id = api.post("/api/send-email/", payload, format="json").json()["task_id"]
    assert wait_for_status(api, task_id)["status"] == "FAILURE"
    other_kind = finished_job(tenant=api.user.tenant, kind="generate_report", status="FAILURE")

    # when an operator retries the failed emails (the mail server has been fixed)
    output = run("retry_failed", "--kind", "send_email", "--since", "1h")

    # then a new job sends it, the old job stays FAILURE, and the other kind is untouched
    assert "1 retried, 0 skipped" in output
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "ada@example.com"
    email = OutboundEmail.objects.get()
    new_task_id = email.job_id
    assert new_task_id != task_id and f"{task_id}  send_email  ->  {new_task_id}" in output
    assert wait_for_status(api, new_task_id)["status"] == "SUCCESS"
    assert wait_for_status(api, task_id)["status"] == "FAILURE"
    email.refresh_from_db()
    assert (email.status, email.error, email.attempts) == ("sent", "", 1)  # a fresh round of attempts
    assert Job.objects.filter(kind="generate_report").count() == 1, other_kind

    # and running it again retries nothing twice
    again = run("retry_failed", "--kind", "send_email", "--since", "1h")
    assert "0 retried, 1 skipped" in again and "already retried" in again.lower()
    assert len(smtp_server.wait_for(2, timeout=1)) == 1


def test_retry_failed_dry_run_and_bad_since(db):
    job = finished_job(kind="fetch_external_data", status="FAILURE")
    finished_job(kind="fetch_external_data", status="SUCCESS")
    finished_job(kind="send_email", status="SUCCESS")

    assert f"would retry  {job.task_id}" in run("retry_failed", "--dry-run", "--since", "7d")
    assert Job.objects.count() == 3
    assert "No failed" in run("retry_failed", "--kind", "send_email")
    # a kind not recorded is most likely a typo: the kinds there are, each once
    errors = StringIO()
    call_command("retry_failed", "--kind", "fetch_externl_data", stdout=StringIO(), stderr=errors)
    told = "No job of kind 'fetch_externl_data' is recorded. Kinds recorded: fetch_external_data, send_email."
    assert told in errors.getvalue()
    for since in ("yesterday", "99999999999d", "3000000d"):  # not a duration; past what Python or a date can hold
        with pytest.raises(CommandError, match="--since"):
            run("retry_failed", "--since", since)


def decisions(output: str) -> dict[str, str]:
    """retry_failed's verdicts, real or --dry-run: task id -> "retry", or the reason it is skipped."""
    found = {}
    for line in output.splitlines():
        verb, _, rest = line.removeprefix("would ").partition("  ")
        if verb in ("retry", "retried"):
            found[rest.split()[0]] = "retry"
        elif verb in ("skip", "skipped"):
            found[rest.split()[0]] = rest.split(": ", 1)[1]
    return found


def test_retry_failed_dry_run_reports_what_the_real_run_then_does(transactional_db, caplog):
    # given failed jobs of each sort: one to retry, one retried already, one whose email is gone, one whose email waits
    fresh = finished_job(kind="fetch_external_data", status="FAILURE", kwargs={"url": "https://a.example/"})
    retried = finished_job(kind="fetch_external_data", status="FAILURE", kwargs={"url": "https://b.example/"})
    its_retry = finished_job(tenant=retried.tenant, kind="fetch_external_data", kwargs=retried.kwargs)
    email_gone = finished_job(kind="send_email", status="FAILURE")
    email_failed = finished_job(kind="send_email", status="FAILURE")
    OutboundEmail.objects.create(
        tenant=email_failed.tenant, job=email_failed, to_email="ada@example.com", subject="Hi", body="x",
        status=OutboundEmail.Status.FAILED, error="550 No such user here", attempts=3,
    )  # fmt: skip
    jobs_before = set(Job.objects.values_list("task_id", flat=True))
    celery_app.control.purge()

    # when an operator looks first (committed transactions: what it would publish after a commit would go now), then
    # runs it
    with caplog.at_level(logging.INFO):
        dry = run("retry_failed", "--since", "1h", "--dry-run")
    jobs_after_dry_run = set(Job.objects.values_list("task_id", flat=True))
    email_after_dry_run = OutboundEmail.objects.values_list("status", "job_id").get()
    queued_after_dry_run = sum(queue_depths().values())
    logged_by_dry_run = [r.getMessage() for r in caplog.records if "retried as" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        real = run("retry_failed", "--since", "1h")
    logged_by_real_run = [r.getMessage() for r in caplog.records if "retried as" in r.getMessage()]
    queued_after_real_run = sum(queue_depths().values())
    celery_app.control.purge()  # the real run published its retries; no worker runs here

    # then the dry run named the same jobs with the same reasons, and changed nothing
    assert decisions(dry) == decisions(real)
    assert decisions(real) == {
        fresh.task_id: "retry",
        retried.task_id: f"Already retried as {its_retry.task_id}.",
        email_gone.task_id: "Its email no longer exists.",
        email_failed.task_id: "retry",
    }
    assert "2 would be retried, 2 skipped, of 4 failed job(s)" in dry and "2 retried, 2 skipped, of 4" in real
    assert jobs_after_dry_run == jobs_before
    assert (queued_after_dry_run, queued_after_real_run) == (0, 2)  # the dry run published nothing
    assert (logged_by_dry_run, len(logged_by_real_run)) == ([], 2)  # nor logged a retry that did not happen
    assert email_after_dry_run == (OutboundEmail.Status.FAILED, email_failed.task_id)
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.QUEUED  # the real run did put it back
