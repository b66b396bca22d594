"""PostgreSQL unreachable for 30 s while a job runs and more wait: nothing lost, the worker survives, all finish."""

import time
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection

from jobs.recovery import jobs_recover_stranded
from notifications.models import OutboundEmail
from tests.chaos.test_worker_crash import send
from tests.conftest import wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


@contextmanager
def database_unreachable():
    """Cut every connection to this run's test database and refuse new ones, the way a restart would."""
    name = connection.settings_dict["NAME"]
    params = connection.get_connection_params()
    admin = psycopg.connect(
        host=params.get("host") or "127.0.0.1", port=params.get("port") or 5432, user=params.get("user"),
        password=params.get("password"), dbname="postgres", autocommit=True,
    )  # fmt: skip
    connection.close()
    try:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        yield
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


def test_database_down_for_30s_mid_task_everything_finishes_once(worker_process, smtp_server, api):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL, whose connections the test can cut")
    worker = worker_process(
        concurrency=2, TEST_EMAIL_URL=smtp_server.url, JOBS_DB_RETRY_BASE_DELAY="4", EMAIL_RETRY_BASE_DELAY="1"
    ).start()
    # given a send in progress, that the mail server will turn away once ("try later"), and more sends queued
    smtp_server.rcpt_delay = 2
    smtp_server.refusals = ["451 4.3.0 Try again later"]
    task_ids = send(api, 4)
    assert smtp_server.stalling.wait(timeout=20)

    # when the database disappears for 30 s
    with database_unreachable():
        smtp_server.rcpt_delay = 0
        time.sleep(30)
        assert worker.process.poll() is None, "the worker must survive the outage"

    # then, with the sweeper running as beat would, every job finishes and every address got one email
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs_recover_stranded(grace=timedelta(0))
        if OutboundEmail.objects.filter(status="sent").count() == 4:
            break
        time.sleep(1)
    for task_id in task_ids:
        assert wait_for_status(api, task_id, timeout=60)["status"] == "SUCCESS", worker.log()[-4000:]
    time.sleep(1)
    assert sorted(m["To"] for m in smtp_server.messages) == [f"user{i}@example.com" for i in range(4)]
    assert worker.process.poll() is None
