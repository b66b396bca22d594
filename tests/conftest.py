import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from rest_framework.test import APIClient

from config.celery import app as celery_app
from tests.factories import TenantFactory, UserFactory, token_for

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- API clients ------------------------------------------------------------------------------------------------------


@pytest.fixture
def tenant_user(db):
    return UserFactory(tenant=TenantFactory(name="Acme"))


@pytest.fixture
def api(tenant_user) -> APIClient:
    """An API client authenticated with the token of a user of tenant "Acme"."""
    return client_for(tenant_user)


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


# --- A real worker ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _session_worker(django_db_setup, django_db_blocker):
    """One in-process Celery worker (solo pool, a thread of its own) consuming every queue on the test Redis."""
    with django_db_blocker.unblock():
        celery_app.control.purge()
        with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30):
            yield


@pytest.fixture
def celery_worker(_session_worker, transactional_db):
    """The session's worker, with a test database whose commits it can see and no messages left by other tests."""
    celery_app.control.purge()
    yield
    celery_app.control.purge()


# --- A real SMTP server -----------------------------------------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """What the test SMTP server received, and the replies it was told to give instead of accepting."""

    messages: list[Message] = field(default_factory=list)
    attempts: list[float] = field(default_factory=list)  # monotonic time of every DATA or refused RCPT
    refusals: list[str] = field(default_factory=list)  # replies to give to the next RCPTs, e.g. "451 try later"
    received: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
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
    recorder = SmtpRecorder()
    port = free_port()
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
