"""Messages that would hurt a worker: one that kills it every time, and one that is not JSON at all."""

import pathlib
import pickle
import uuid

import pytest
from django.db import transaction

from config.celery import app as celery_app
from jobs.models import Job
from jobs.services import job_enqueue
from tests.conftest import wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def test_a_poison_pill_is_failed_after_a_bounded_number_of_deliveries(worker_process, api, settings):
    worker = worker_process().start()
    with transaction.atomic():
        job = job_enqueue(task_name="tests.crash_every_time", kind="test_crash", tenant_id=api.user.tenant_id)

    final = wait_for_status(api, job.task_id, timeout=90)

    assert final["status"] == "FAILURE", worker.log()[-3000:]
    expected_starts = settings.JOBS_MAX_CRASH_REDELIVERIES + 2
    assert final["error"].startswith(f"Stopped after {expected_starts} deliveries")
    assert Job.objects.get().run_count == expected_starts
    # and the worker is still there to do real work
    email = api.post("/api/send-email/", {"to_email": "a@example.com", "subject": "s", "body": "b"}, format="json")
    assert wait_for_status(api, email.json()["task_id"])["status"] == "SUCCESS"


class _TouchOnUnpickle:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_a_pickle_message_pushed_into_the_broker_is_refused_and_runs_nothing(worker_process, api, tmp_path):
    worker = worker_process().start()
    marker = tmp_path / "unpickled"
    body = pickle.dumps(((_TouchOnUnpickle(marker),), {}, {}))

    with celery_app.connection_for_write() as connection:
        connection.Producer().publish(
            body,
            exchange="",
            routing_key="default",
            serializer=None,
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"id": str(uuid.uuid4()), "task": "notifications.send_email", "lang": "py", "argsrepr": "()"},
        )

    # a job sent after it is done, so the pickle has certainly been taken off the queue by then
    email = api.post("/api/send-email/", {"to_email": "a@example.com", "subject": "s", "body": "b"}, format="json")
    assert wait_for_status(api, email.json()["task_id"])["status"] == "SUCCESS"
    assert not marker.exists()
    assert worker.process.poll() is None
    assert "Refusing to deserialize untrusted content of type pickle" in worker.log()
