"""A Redis that hangs (a frozen process, or a network that drops packets) instead of refusing connections."""

import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from jobs.models import Job
from tests.conftest import free_port, start_web
from tests.factories import token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]

EMAIL = {"to_email": "hang@example.com", "subject": "Hang", "body": "Redis is frozen."}


def web_timeout_seconds() -> int:
    """The Procfile's gunicorn --timeout: a request still running after it is killed, and its client gets no answer."""
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    return int(re.search(r"^web:.*--timeout (\d+)", procfile, re.MULTILINE).group(1))


def test_an_enqueue_while_redis_hangs_answers_202_before_the_web_server_gives_up_and_the_relay_has_it(
    private_redis, api, tmp_path
):
    port = free_port()
    web = start_web(port, tmp_path / "web.log", "--workers", "1", "--timeout", str(web_timeout_seconds()))
    url, headers = f"http://127.0.0.1:{port}/api/send-email/", {"Authorization": f"Token {token_for(api.user)}"}
    try:
        assert httpx.post(url, json=EMAIL, headers=headers, timeout=30).status_code == 202  # connections made
        os.kill(private_redis.process.pid, signal.SIGSTOP)  # its sockets stay open, and nothing answers on them
        try:
            began = time.monotonic()
            response = httpx.post(url, json=EMAIL, headers=headers, timeout=60)
            took = time.monotonic() - began
            # the next ones, moments later, do not wait on it again (WEB_REDIS_BACKOFF_SECONDS)
            later = [httpx.post(url, json=EMAIL, headers=headers, timeout=60) for _ in range(3)]
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
    finally:
        web.terminate()
        web.wait(30)
    log = (tmp_path / "web.log").read_text()

    assert response.status_code == 202, response.text
    # Not a speed figure: past this the server kills the request, and a client that saw no answer sends it again.
    assert took < web_timeout_seconds(), f"the request took {took:.1f} s"
    job = Job.objects.get(task_id=response.json()["task_id"])
    assert job.published_at is None  # the broker never said it took it: the relay publishes it
    assert [answer.status_code for answer in later] == [202, 202, 202]
    for answer in later:
        assert f"Broker failed moments ago; job {answer.json()['task_id']}" in log, log[-3000:]
        assert Job.objects.get(task_id=answer.json()["task_id"]).published_at is None


def test_status_polls_while_redis_hangs_wait_on_it_once_in_a_while_not_at_every_reconnect(private_redis, api, tmp_path):
    port = free_port()
    web = start_web(port, tmp_path / "web.log", "--workers", "1", "--timeout", str(web_timeout_seconds()))
    headers = {"Authorization": f"Token {token_for(api.user)}"}
    base = f"http://127.0.0.1:{port}"
    try:
        task_id = httpx.post(f"{base}/api/send-email/", json=EMAIL, headers=headers, timeout=30).json()["task_id"]
        assert httpx.get(f"{base}/api/tasks/{task_id}/", headers=headers, timeout=30).status_code == 200  # subscribed
        os.kill(private_redis.process.pid, signal.SIGSTOP)
        try:
            answers, waits = [], []  # a client polling its task's status without pause, for 12 s
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                began = time.monotonic()
                answers.append(httpx.get(f"{base}/api/tasks/{task_id}/", headers=headers, timeout=60).status_code)
                waits.append(time.monotonic() - began)
        finally:
            os.kill(private_redis.process.pid, signal.SIGCONT)
    finally:
        web.terminate()
        web.wait(30)

    assert set(answers) == {200}
    # The status comes from the database meanwhile. What the polls spent waiting on the frozen Redis (the cache's
    # subscription, the throttle) is one attempt per WEB_REDIS_BACKOFF_SECONDS, not one a second.
    stalled = sum(wait for wait in waits if wait > 0.3)
    assert stalled < 5, f"{stalled:.1f} s of 12 s spent waiting on Redis: {sorted(waits)[-8:]}"
