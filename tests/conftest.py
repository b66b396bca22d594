import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from tests.factories import TenantFactory, UserFactory, token_for

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, log=lambda: ""):
    """Poll until ``predicate()`` is truthy and return its value; fail with ``what`` (and ``log()``) after ``timeout``.
    Waiting for what a step needs rather than a fixed sleep: a busy machine starts processes slowly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s\n{log()}")


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the figures tests recorded for the CI log (``record_property("ci_log", line)``), also under xdist, where
    a test's own output never reaches the terminal."""
    reports = [r for kind in ("passed", "failed") for r in terminalreporter.getreports(kind)]
    lines = [value for report in reports for name, value in report.user_properties if name == "ci_log"]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


# --- API clients ------------------------------------------------------------------------------------------------------


@pytest.fixture
def tenant_user(db):
    return UserFactory(tenant=TenantFactory(name="Acme"))


@pytest.fixture
def api(tenant_user) -> APIClient:
    """An API client authenticated with the token of a user of tenant "Acme"."""
    return client_for(tenant_user)


@pytest.fixture
def schema(client) -> dict:
    """The OpenAPI document as a client downloads it."""
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    client.user = user
    return client


def wait_for_status(client: APIClient, task_id: str, statuses=FINAL, timeout: float = 30) -> dict:
    """Poll the status API until the task reaches one of ``statuses``; return that answer."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/tasks/{task_id}/")
        assert response.status_code == 200, response.content
        body = response.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {statuses} in {timeout}s; last answer {body}")


@contextlib.contextmanager
def broker_at(url: str):
    """Point this process's publishers and remote control at another broker URL (a running worker keeps its own)."""
    original = celery_app.conf.broker_url

    def switch(to: str) -> None:
        # kombu keeps one pool per URL; dropping our references makes the next publish pick the pool for ``to``.
        celery_app.conf.broker_url = celery_app.conf.broker_write_url = to
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    switch(url)
    try:
        yield
    finally:
        switch(original)


# --- A real worker ----------------------------------------------------------------------------------------------------


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker in this process (solo pool, a thread of its own) consuming every queue on the test
    Redis, with a test database whose commits it can see and no messages left over from other tests."""
    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
        yield
    celery_app.control.purge()


# --- A real SMTP server -----------------------------------------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """What the test SMTP server received, and the replies it was told to give instead of accepting."""

    messages: list[Message] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)  # monotonic time of every DATA or refused RCPT
    refusals: list[str] = field(default_factory=list)  # replies to give to the next RCPTs, e.g. "451 try later"
    rcpt_delay: float = 0.0  # seconds to stall before answering RCPT: keeps a send "in flight" for a while
    url: str = ""  # for worker processes: ``worker_process(TEST_EMAIL_URL=smtp_server.url)``
    quit_delay: float = 0.0  # seconds to stall before answering QUIT, after a message was accepted
    quit_reply: str = "221 Bye"
    received: threading.Event = field(default_factory=threading.Event)
    stalling: threading.Event = field(default_factory=threading.Event)  # set while an RCPT is being held back
    quitting: threading.Event = field(default_factory=threading.Event)  # set while a QUIT is being held back

    async def handle_QUIT(self, server, session, envelope):
        if self.quit_delay:
            self.quitting.set()
            await asyncio.sleep(self.quit_delay)
        return self.quit_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_delay:
            self.stalling.set()
            await asyncio.sleep(self.rcpt_delay)
        if self.refusals:
            self.attempts.append(time.monotonic())
            return self.refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.attempts.append(time.monotonic())
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        self.received.set()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 20) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on a free port, with Django's SMTP backend pointed at it."""
    port = free_port()
    recorder = SmtpRecorder(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(recorder, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield recorder
    controller.stop()


# --- Real worker processes --------------------------------------------------------------------------------------------


def database_url_for_subprocesses() -> str:
    """A DATABASE_URL that reaches the database this test run is using (the test database, not the configured one)."""
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a project process started by a test: test settings, this run's database and Redis."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings_test",
        DATABASE_URL=database_url_for_subprocesses(),
        TEST_REDIS_URL=celery_app.conf.broker_url,
        TEST_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_web(port: int, log_path: Path, *args: str, **env: str) -> subprocess.Popen:
    """gunicorn serving the project on ``port`` (sync workers, as in the Procfile, unless ``args`` say otherwise),
    started and answering /healthz."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", *args],
        cwd=PROJECT_DIR, env=subprocess_env(**env), stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()}")


class WorkerProcess:
    """A `celery worker` process (prefork pool) started by a test; it can be stopped, killed and started again."""

    def __init__(
        self, log_dir: Path, concurrency: int = 1, extra_args: tuple[str, ...] = (), gossip: bool = False, **env: str
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self.log_path = log_dir / f"worker-{self.name.split('@')[0]}.log"
        self.concurrency = concurrency
        self.extra_args = extra_args
        self.env = env
        self.process: subprocess.Popen | None = None
        # Gossip and mingle off unless asked for (workers of other tests would otherwise be each other's neighbours;
        # the Procfile's worker has both).
        self.quiet_flags = () if gossip else ("--without-gossip", "--without-mingle")

    def start(self, timeout: float = 30) -> "WorkerProcess":
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
             f"--concurrency={self.concurrency}", "--loglevel=INFO", "-n", self.name,
             "--queues=default,reports,webhooks", *self.quiet_flags, *self.extra_args],
            cwd=PROJECT_DIR, env=subprocess_env(**self.env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{self.log()}")
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                if b" ready." in handle.read():
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

    def pool_children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def kill(self) -> None:
        """SIGKILL the main process and its pool: a crash, no chance to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # warm shutdown: finish the running task, then exit
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def worker_process(transactional_db, tmp_path):
    """Make real worker processes: ``worker_process(**env).start()``. All are stopped when the test ends.

    Not to be combined with ``celery_worker`` in one test: both would take messages from the same queues.
    """
    celery_app.control.purge()
    started: list[WorkerProcess] = []

    def make(concurrency: int = 1, extra_args: tuple[str, ...] = (), gossip: bool = False, **env: str) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, concurrency=concurrency, extra_args=extra_args, gossip=gossip, **env)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        worker.stop()
    celery_app.control.purge()


@pytest.fixture(autouse=True)
def _no_publish_answers_left():
    """A response the test client never closed (a streamed download left unread) leaves its request's publishes
    waiting for their answers on this thread (jobs.services.publish_answers_read): read them after each test, so that
    the next test's publishes outside a request wait for their answers, as a worker's do."""
    yield
    from jobs.services import publish_answers_read

    publish_answers_read()


@pytest.fixture(autouse=True)
def _fresh_api_throttle():
    """Each test starts with the tenant API budgets untouched (tenant ids repeat across test databases), and with
    nothing in this process's cache of tokens and statuses (rows of a rolled-back test may come back with its ids)."""
    import redis
    from django.conf import settings

    from accounts.throttling import _leases
    from jobs.localcache import local_cache

    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in (":1:throttle_*", "throttle:*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    _leases.clear()
    local_cache.reset()
