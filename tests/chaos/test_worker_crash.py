"""A worker killed mid-job: every job in flight still ends, once, within minutes — not hours later."""

import os
import signal
import time
from datetime import timedelta

import pytest

from jobs.models import Job
from jobs.recovery import jobs_recover_stranded
from notifications.models import OutboundEmail
from tests.conftest import wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def send(api, n: int) -> list[str]:
    return [
        api.post(
            "/api/send-email/", {"to_email": f"user{i}@example.com", "subject": f"#{i}", "body": "x"}, format="json"
        ).json()["task_id"]
        for i in range(n)
    ]


def sweep_until_recovered(deadline_s: float = 60) -> set[str]:
    """Run the sweeper as beat would (two looks at a stranded job before it is republished)."""
    recovered: set[str] = set()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = jobs_recover_stranded(grace=timedelta(0))
        recovered.update(found)
        if found or not Job.objects.exclude(result__status__in=["SUCCESS", "FAILURE", "REVOKED"]).exists():
            return recovered
        time.sleep(0.5)
    return recovered


def test_main_process_killed_the_sweeper_recovers_its_jobs_and_each_is_sent_once(
    private_redis, worker_process, smtp_server, api
):
    # given a worker busy with slow sends, more waiting behind it
    smtp_server.rcpt_delay = 1.5
    worker = worker_process(concurrency=2, TEST_REDIS_URL=private_redis.url, TEST_EMAIL_URL=smtp_server.url).start()
    task_ids = send(api, 6)
    assert smtp_server.stalling.wait(timeout=20)  # a send is in progress

    # when the whole worker dies at once (main process and pool), then comes back
    worker.kill()
    assert Job.objects.filter(result__status="SUCCESS").count() < 6  # the crash left work undone
    worker.start()
    recovered = sweep_until_recovered()

    # then every job ends SUCCESS, and every address got exactly one email
    finals = [wait_for_status(api, task_id, timeout=60)["status"] for task_id in task_ids]
    assert finals == ["SUCCESS"] * 6, worker.log()[-3000:]
    assert recovered, "the sweeper should have republished the jobs the dead worker held"
    smtp_server.wait_for(6)
    time.sleep(1)  # a duplicate, if any, would arrive now
    recipients = sorted(message["To"] for message in smtp_server.messages)
    assert recipients == sorted(f"user{i}@example.com" for i in range(6))
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {"sent"}


# RCPT: killed before the server took the message, so it must be sent on redelivery. QUIT: killed after the server
# took it, before the row recorded it, so the redelivery must find the delivery receipt and send nothing.
@pytest.mark.parametrize("stalled_at", ["RCPT", "QUIT"])
def test_a_pool_process_killed_mid_send_is_replaced_and_the_message_arrives_once(
    private_redis, worker_process, smtp_server, api, stalled_at
):
    # given a mail server that holds the conversation at RCPT (message not yet taken) or at QUIT (taken)
    delay, stalling = {
        "RCPT": ("rcpt_delay", smtp_server.stalling),
        "QUIT": ("quit_delay", smtp_server.quitting),
    }[stalled_at]
    setattr(smtp_server, delay, 3)
    worker = worker_process(TEST_REDIS_URL=private_redis.url, TEST_EMAIL_URL=smtp_server.url).start()
    [task_id] = send(api, 1)
    assert stalling.wait(timeout=20)
    assert len(smtp_server.messages) == (0 if stalled_at == "RCPT" else 1)

    # when the pool process running it dies right there
    setattr(smtp_server, delay, 0)
    [child] = worker.pool_children()
    os.kill(child, signal.SIGKILL)

    # then the message is given back at once (no sweeper needed), and the address gets it exactly once
    assert wait_for_status(api, task_id, timeout=30)["status"] == "SUCCESS", worker.log()[-3000:]
    assert len(smtp_server.wait_for(2, timeout=2)) == 1
    assert OutboundEmail.objects.get().status == "sent"
    job = Job.objects.get()
    assert (job.publish_count, job.run_count) == (1, 2), worker.log()[-3000:]  # one message, delivered twice


@pytest.mark.parametrize("victim", ["main process", "pool process"])
def test_worker_killed_mid_report_the_report_completes_once_with_one_file(private_redis, worker_process, api, victim):
    from reports.models import Report
    from tests.reports.conftest import add_users, stored_files_of

    # given a report big enough to be caught half done
    add_users(api.user.tenant, 1500)
    worker = worker_process(TEST_REDIS_URL=private_redis.url).start()
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    wait_for_status(api, accepted["task_id"], {"PROGRESS"}, timeout=60)

    # when the worker (or only the pool process rendering it) dies mid-render
    if victim == "main process":
        worker.kill()
        assert Report.objects.get().status == "generating"
        worker.start()
        sweep_until_recovered(deadline_s=90)
    else:
        [child] = worker.pool_children()
        os.kill(child, signal.SIGKILL)  # Celery gives the message back at once; a new pool process takes it

    # then the report completes exactly once: one completed row, one stored file, a PDF that opens
    final = wait_for_status(api, accepted["task_id"], timeout=120)
    assert final["status"] == "SUCCESS", worker.log()[-3000:]
    report = Report.objects.get()
    assert report.status == "completed" and report.page_count > 1
    assert stored_files_of(report) == [report.file.name.rsplit("/", 1)[1]]
    job = Job.objects.get(task_id=accepted["task_id"])
    assert job.run_count == 2, worker.log()[-3000:]
    if victim == "pool process":
        assert job.publish_count == 1  # the broker gave the same message back; nothing published it again
    download = api.get(f"/api/reports/{report.pk}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content).startswith(b"%PDF")
