"""Load with a crash in the middle: 50 clients post a mix of jobs for 60 s through gunicorn while a worker is killed
and restarted once. Every accepted job must end in a final state, none twice.

LOAD_SECONDS and LOAD_CLIENTS shrink it for a quick local run.
"""

import os
import random
import subprocess
import threading
import time
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from django.db import close_old_connections
from django_celery_results.models import TaskResult

from jobs.models import Job
from jobs.recovery import jobs_recover_stranded
from notifications.models import OutboundEmail
from reports.models import Report
from tests.conftest import free_port, start_web, token_for
from tests.reports.conftest import stored_files_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]

SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "50"))
THINK_SECONDS = float(os.environ.get("LOAD_THINK_SECONDS", "2"))  # a client's pause between two requests
FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


def start_load_web(port: int, redis_url: str, log_path) -> subprocess.Popen:
    return start_web(
        port, log_path, "--workers", "2", "--threads", "8", "--worker-class", "gthread", "--timeout", "60",
        "--keep-alive", "30",  # longer than a client's pause, as behind a load balancer
        TEST_REDIS_URL=redis_url,
    )  # fmt: skip


class Client(threading.Thread):
    """One client posting a mix of jobs, pausing between them: mostly emails, some reports and exports."""

    MIX = ["email"] * 24 + ["report"] + ["export"]

    def __init__(self, number: int, base_url: str, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.stop = number, stop
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=30)
        self.accepted: list[str] = []
        self.answers: Counter = Counter()

    def run(self) -> None:
        sent = 0
        while not self.stop.wait(THINK_SECONDS * random.uniform(0.5, 1.5)):
            kind = self.MIX[(self.number + sent) % len(self.MIX)]
            if kind == "email":
                body = {"to_email": f"c{self.number}-{sent}@example.com", "subject": "load", "body": "x"}
                response = self._post("/api/send-email/", body)
            elif kind == "report":
                response = self._post("/api/reports/generate/", {"report_type": "activity"})
            else:
                response = self._post("/api/users/batch-process/", {})
            sent += 1
            if response is None:
                continue
            self.answers[response.status_code] += 1
            if response.status_code == 202:
                self.accepted.append(response.json()["task_id"])

    def _post(self, path: str, body: dict) -> httpx.Response | None:
        try:
            return self.http.post(path, json=body)
        except httpx.TransportError:
            self.answers["transport error"] += 1
            return None


def test_fifty_clients_for_a_minute_with_a_worker_killed_every_accepted_job_ends_once(
    private_redis, worker_process, smtp_server, api, tmp_path, record_property
):
    # given the web server, two workers and a sweeper running as beat would
    web = start_load_web(free_port(), private_redis.url, tmp_path / "web.log")
    base_url = f"http://127.0.0.1:{web.args[web.args.index('--bind') + 1].split(':')[1]}"
    env = {"TEST_REDIS_URL": private_redis.url, "TEST_EMAIL_URL": smtp_server.url}
    victim = worker_process(concurrency=2, **env).start()
    worker_process(concurrency=2, **env).start()
    done = threading.Event()

    def sweep() -> None:
        while not done.wait(5):
            jobs_recover_stranded(grace=timedelta(seconds=5))
        close_old_connections()

    sweeper = threading.Thread(target=sweep, daemon=True)
    sweeper.start()
    stop = threading.Event()
    clients = [Client(n, base_url, token_for(api.user), stop) for n in range(CLIENTS)]
    try:
        # when they post jobs for a minute, and one worker dies a third of the way in and comes back
        for client in clients:
            client.start()
        time.sleep(SECONDS / 3)
        victim.kill()
        time.sleep(5)
        victim.start()
        time.sleep(max(0.0, SECONDS * 2 / 3 - 5))
        stop.set()
        for client in clients:
            client.join(timeout=60)

        accepted = [task_id for client in clients for task_id in client.accepted]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            final = TaskResult.objects.filter(task_id__in=accepted, status__in=FINAL).count()
            if final == len(accepted):
                break
            time.sleep(2)
    finally:
        stop.set()
        done.set()
        sweeper.join(timeout=30)
        web.terminate()
        web.wait(timeout=30)

    # then every accepted job ended, and no effect happened twice
    states = dict(TaskResult.objects.filter(task_id__in=accepted).values_list("task_id", "status"))
    finished = sum(1 for s in states.values() if s == "SUCCESS")
    failed = sum(1 for s in states.values() if s == "FAILURE")
    lost = len(accepted) - sum(1 for s in states.values() if s in FINAL)
    # An email is sent twice only as the same message: a worker killed between the mail server's "250" and the
    # receipt that records it (a window of about a millisecond) resends it with its Message-ID, so receivers can drop
    # the copy (notifications/services.py). Such copies are counted apart; any other second message is a duplicate.
    messages = Counter((message["To"], message["Message-ID"]) for message in smtp_server.messages)
    sent_to = Counter(to for to, _ in messages)
    copies = sum(n - 1 for n in messages.values() if n > 1)
    files = {report.pk: len(stored_files_of(report)) for report in Report.objects.all()}
    duplicated = sum(n - 1 for n in sent_to.values() if n > 1) + sum(n - 1 for n in files.values() if n > 1)
    answers = sum((client.answers for client in clients), Counter())
    record_property(  # the run's figures belong in the CI log (tests/conftest.py prints them at the end)
        "ci_log",
        f"load: {CLIENTS} clients, {SECONDS:.0f}s, answers {dict(answers)}; accepted {len(accepted)}, "
        f"finished {finished}, failed {failed}, lost {lost}, duplicated {duplicated}, "
        f"resent copies with the same Message-ID {copies}",
    )
    assert len(accepted) == Job.objects.count() > CLIENTS
    assert set(answers) <= {202}, answers  # no 5xx, no dropped connection
    assert (lost, duplicated, failed) == (0, 0, 0), states
    assert copies <= 2  # at most the emails the killed worker (two processes) was sending
    assert OutboundEmail.objects.exclude(status="sent").count() == 0
    assert set(Report.objects.values_list("status", flat=True)) <= {"completed"}
