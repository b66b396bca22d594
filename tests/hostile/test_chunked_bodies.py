"""Bodies sent chunked (no Content-Length), through gunicorn as in the Procfile: Django alone reads them as empty, so
jobs.middleware reads them itself, bounded by REQUEST_BODY_MAX_BYTES."""

import io
import json
import socket

import httpx
import pytest
from django.conf import settings

from jobs.middleware import RequestBodyLimitMiddleware
from jobs.models import Job
from notifications.models import OutboundEmail
from tests.conftest import free_port, start_web, token_for
from tests.factories import TenantFactory, UserFactory
from tests.webhooks.conftest import sign_delivery
from webhooks.models import WebhookEvent, WebhookSource

pytestmark = pytest.mark.django_db(transaction=True)  # gunicorn must see the rows

EMAIL = {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi Ada"}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    port = free_port()
    process = start_web(port, tmp_path_factory.mktemp("web") / "web.log")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


def chunks(body: bytes, size: int = 1000):
    """An iterator, so httpx sends the body with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_chunked(url: str, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(url, content=chunks(body), headers={"Content-Type": "application/json", **headers}, timeout=30)


@pytest.fixture
def token(db) -> str:
    return token_for(UserFactory(tenant=TenantFactory(name="Acme")))


def test_a_chunked_request_is_read_whole_and_accepted(web, token):
    response = post_chunked(f"{web}/api/send-email/", json.dumps(EMAIL).encode(), {"Authorization": f"Token {token}"})

    assert response.status_code == 202, response.text
    email = OutboundEmail.objects.get()
    assert (email.to_email, email.subject, email.body) == (EMAIL["to_email"], EMAIL["subject"], EMAIL["body"])
    assert Job.objects.filter(task_id=response.json()["task_id"]).exists()


def test_a_chunked_body_over_the_limit_answers_413_and_changes_nothing(web, token):
    body = json.dumps({**EMAIL, "body": "x" * settings.REQUEST_BODY_MAX_BYTES}).encode()

    response = post_chunked(f"{web}/api/send-email/", body, {"Authorization": f"Token {token}"})

    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    assert not OutboundEmail.objects.exists()
    assert not Job.objects.exists()


def test_an_empty_chunked_body_is_an_empty_body(web, token):
    response = post_chunked(f"{web}/api/users/batch-process/", b"", {"Authorization": f"Token {token}"})

    assert response.status_code == 202, response.text


def read_until_closed(sock: socket.socket) -> bytes:
    """The whole answer: gunicorn may send the headers and the body in separate packets, then closes."""
    parts = []
    while part := sock.recv(65536):
        parts.append(part)
    return b"".join(parts)


def test_malformed_chunk_framing_answers_400_not_500(web, token):
    raw = (
        b"POST /api/send-email/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Token " + token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    host, port = web.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(raw)
        answer = read_until_closed(sock).decode("latin-1")

    assert answer.startswith("HTTP/1.1 400"), answer
    assert "Malformed or incomplete chunked body" in answer
    assert not OutboundEmail.objects.exists()


class Endless(io.RawIOBase):
    """A decoded request body that never ends; remembers the largest read asked of it."""

    def __init__(self) -> None:
        self.largest = 0

    def read(self, size: int = -1) -> bytes:
        assert size >= 0, "an unbounded read"
        self.largest = max(self.largest, size)
        return b"x" * size


def test_a_chunked_body_is_never_read_past_the_limit(rf):
    body = Endless()
    request = rf.post("/api/send-email/", content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.META.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": body, "wsgi.input_terminated": True})

    response = RequestBodyLimitMiddleware(lambda request: pytest.fail("the view must not run"))(request)

    assert response.status_code == 413
    assert body.largest == settings.REQUEST_BODY_MAX_BYTES + 1


def test_a_chunked_webhook_keeps_its_exact_bytes_for_the_signature(web):
    source = WebhookSource.objects.create(slug="billing")
    delivery = sign_delivery(source.signing_secret, {"type": "invoice.paid", "data": {"note": "é" * 3000}})

    response = post_chunked(f"{web}/api/webhooks/billing/", delivery.body, delivery.headers)

    assert response.status_code == 202, response.text
    assert WebhookEvent.objects.filter(webhook_id=delivery.webhook_id).count() == 1
