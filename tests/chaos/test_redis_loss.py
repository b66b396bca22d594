"""Redis restarted empty while jobs are queued and running: the sweeper puts back what was lost, and only that."""

import time

import pytest
import redis

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


def test_a_worker_holding_jobs_outlives_a_redis_that_stays_down_for_a_while(
    private_redis, worker_process, smtp_server, api
):
    # as the Procfile runs it: gossip and mingle on (a private Redis: no other neighbours)
    worker = worker_process(concurrency=2, gossip=True, TEST_REDIS_URL=private_redis.url,
                            TEST_EMAIL_URL=smtp_server.url).start()  # fmt: skip
    smtp_server.rcpt_delay = 0.3  # sends take a while, so the worker always holds some
    accepted = []
    for _ in range(3):
        # given jobs streaming in and the worker holding some, unacknowledged
        accepted += send(api, 6)
        time.sleep(0.5)
        # when Redis goes away and stays away for a few seconds (Celery 5.7 then puts the held messages back on a
        # connection it has just let go of; the AttributeError it met there ended the worker)
        try:
            private_redis.client().shutdown(nosave=True)  # it closes its clients' connections, as a restart does
        except redis.ConnectionError:
            pass
        private_redis.process.wait(timeout=10)
        time.sleep(3)
        private_redis.start()
        time.sleep(2)
        assert worker.process.poll() is None, worker.log()[-3000:]

    # then the worker is still there and runs what comes next; the jobs Redis lost are recovered, each once
    assert "Unrecoverable error" not in worker.log()
    smtp_server.rcpt_delay = 0
    [after] = send(api, 1)
    assert wait_for_status(api, after, timeout=60)["status"] == "SUCCESS", worker.log()[-3000:]
    sweep_until_recovered(deadline_s=90)
    for task_id in accepted:
        assert wait_for_status(api, task_id, timeout=60)["status"] == "SUCCESS", worker.log()[-3000:]
