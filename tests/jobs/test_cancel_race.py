"""A cancel racing a worker's STARTED write (found from outside: 3 in about 220 tries ended FAILURE, "deadlock
detected"). The worker's write takes the result row, then the job's; the cancel takes the job's row, and must not then
wait for the result row inside that transaction."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.models import F
from django_celery_results.models import TaskResult

from jobs.models import Job
from jobs.services import job_cancel
from notifications.services import email_request

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time: no row locks"),
]


def test_a_cancel_racing_the_workers_started_write_does_not_deadlock(tenant_user):
    # given an accepted email whose worker is writing STARTED: it holds the result row and is about to count the start
    email = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, to_email="a@b.io", subject="s",
                          body="b")  # fmt: skip
    job = Job.objects.get(task_id=email.job_id)
    holding, errors = threading.Event(), []

    def worker():
        try:
            with transaction.atomic():
                TaskResult.objects.create(task_id=job.task_id, status="STARTED", task_name="notifications.send_email")
                holding.set()
                time.sleep(0.5)  # meanwhile the cancel runs
                Job.objects.filter(pk=job.pk).update(run_count=F("run_count") + 1)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    started = threading.Thread(target=worker)
    started.start()
    assert holding.wait(10)

    # when the job is canceled at that moment
    try:
        job_cancel(job=job, by_user_id=tenant_user.id)
    except Exception as exc:  # noqa: BLE001 - reported below
        errors.append(exc)
    started.join(10)

    # then neither side fails, and the job ends canceled and REVOKED
    assert errors == []
    job.refresh_from_db()
    assert job.canceled_at is not None and job.run_count == 1
    assert TaskResult.objects.get(task_id=job.task_id).status == "REVOKED"
