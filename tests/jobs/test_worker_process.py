"""The harness itself: a real worker process runs jobs from the test database, and dies like one when killed."""

import pytest

from tests.conftest import wait_for_status, wait_until

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


def test_a_worker_keeps_its_database_connection_and_replaces_one_that_died(worker_process):
    from django.db import connection

    from tests.chaos.tasks import database_session

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL server sessions")
    # given a worker with one pool process, connections kept for a minute (the production default)
    worker_process(TEST_CONN_MAX_AGE="60").start()

    # when it runs two tasks, then its database session is killed, then it runs another
    first = database_session.delay().get(timeout=30)
    second = database_session.delay().get(timeout=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    wait_until(lambda: not session_alive(first), timeout=10, what="the killed session did not end")
    third = database_session.delay().get(timeout=30)

    # then the first two shared one connection, and the third succeeded on a new one
    assert second == first
    assert third != first


def session_alive(pid: int) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None
