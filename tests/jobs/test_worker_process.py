"""The harness itself: a real worker process runs jobs from the test database, and dies like one when killed."""

import pytest

from tests.conftest import wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_process_runs_a_job_and_can_be_killed(worker_process, api):
    worker = worker_process().start()
    task_id = api.post(
        "/api/send-email/", {"to_email": "a@example.com", "subject": "Hi", "body": "x"}, format="json"
    ).json()["task_id"]

    assert wait_for_status(api, task_id)["status"] == "SUCCESS", worker.log()
    assert worker.pool_children()
    worker.kill()
    assert worker.process.poll() is not None
