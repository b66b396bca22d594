"""Redis restarted empty while jobs are queued and running: the sweeper puts back what was lost, and only that."""

import time

import pytest

from jobs.models import Job
from tests.chaos.test_worker_crash import send, sweep_until_recovered
from tests.conftest import wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def test_redis_restarted_empty_unfinished_jobs_run_once_and_finished_ones_never_again(
    private_redis, worker_process, smtp_server, api
):
    worker = worker_process(TEST_REDIS_URL=private_redis.url, TEST_EMAIL_URL=smtp_server.url).start()
    finished = send(api, 2)
    for task_id in finished:
        assert wait_for_status(api, task_id)["status"] == "SUCCESS"

    # given one send running (held up by the mail server) and more waiting in the queue; queued while the worker is
    # stopped, because on SQLite an enqueue waits for the running send's write lock and would find the queue drained
    worker.stop()
    smtp_server.rcpt_delay = 2
    unfinished = send(api, 4)
    worker.start()
    assert smtp_server.stalling.wait(timeout=20)

    # when Redis restarts with nothing kept
    private_redis.restart()
    smtp_server.rcpt_delay = 0
    recovered = sweep_until_recovered(deadline_s=90)

    # then every accepted job reaches SUCCESS, each address gets one email, and the finished jobs did not run again
    assert recovered
    for task_id in unfinished:
        assert wait_for_status(api, task_id, timeout=60)["status"] == "SUCCESS", worker.log()[-3000:]
    smtp_server.wait_for(6)
    time.sleep(1)
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(f"user{i}@example.com" for i in [0, 1, 0, 1, 2, 3])
    assert [Job.objects.get(task_id=t).run_count for t in finished] == [1, 1]
