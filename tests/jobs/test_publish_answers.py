"""An API request's publish does not wait for the broker's answer: the response goes first, the answer is read when
the server closes the response (Django's request_finished), and a publish the broker did not take is the relay's."""

import io
import json
import logging
from datetime import timedelta

import pytest
import redis
from django.core.handlers.wsgi import WSGIHandler

from config.celery import app as celery_app
from jobs import broker as job_broker
from jobs.models import Job
from jobs.services import _web_request, jobs_publish_pending, publish_answers_deferred, publish_answers_read
from notifications.services import email_request
from tests.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi"}
QUEUE = "default"  # where send_email jobs go


@pytest.fixture
def broker():
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)


@pytest.fixture
def queue_refuses_pushes(broker):
    """The queue's key holds a string: Redis answers every push onto it with an error (WRONGTYPE)."""
    broker.set(QUEUE, "not a list")


def serve(user, *, close: bool = True):
    """POST an email through the WSGI application as a server does: the response first, its ``close()`` (once the
    response has been sent) after; without ``close``, the caller closes it. Returns (status, body, response)."""
    data = json.dumps(EMAIL).encode()
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/send-email/", "SERVER_NAME": "testserver", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
        "wsgi.errors": io.StringIO(), "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": f"Token {token_for(user)}",
    }  # fmt: skip
    statuses = []
    response = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
    body = json.loads(b"".join(response))
    if close:
        response.close()
    return statuses[0], body, response


def job_of(body: dict) -> Job:
    return Job.objects.get(task_id=body["task_id"])


def test_the_message_is_on_the_broker_once_and_the_job_marked_published(tenant_user, broker):
    for _ in range(2):  # the second on the connection the first gave back
        status, body, _ = serve(tenant_user)

        assert status.startswith("202")
        job = job_of(body)
        assert (job.published_at is not None, job.publish_count) == (True, 1)
    messages = [json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)]
    assert sorted(messages) == sorted(Job.objects.values_list("task_id", flat=True))


def test_the_answer_is_read_after_the_response_and_a_refused_push_is_left_to_the_relay(
    tenant_user, broker, queue_refuses_pushes, caplog
):
    # when the broker refuses the push
    with caplog.at_level(logging.WARNING, logger="jobs.services"):
        status, body, response = serve(tenant_user, close=False)

        # then the client has its 202 while the answer is still unread: the job reads published
        assert status.startswith("202") and body["status"] == "queued"
        assert job_of(body).published_at is not None

        # and once the response is closed, the refusal is read: the job is unmarked, for the relay
        response.close()
    job = job_of(body)
    assert (job.published_at, job.publish_count) == (None, 0)
    assert f"Broker did not take job {job.task_id}" in caplog.text

    # which publishes it once the broker takes pushes again
    broker.delete(QUEUE)
    assert jobs_publish_pending(grace=timedelta(0)) == 1
    assert [json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)] == [job.task_id]

    # and the connection the refused push used was not given back with an answer unread: the next publish is fine
    status, body, _ = serve(tenant_user)
    assert job_of(body).published_at is not None
    assert broker.llen(QUEUE) == 2


def test_a_response_the_server_never_closed_has_its_answer_read_when_the_next_request_starts(
    tenant_user, broker, queue_refuses_pushes
):
    _, first, _ = serve(tenant_user, close=False)  # never closed
    broker.delete(QUEUE)

    _, second, _ = serve(tenant_user)

    assert job_of(first).published_at is None  # its refusal was read before the second request went on
    assert job_of(second).published_at is not None
    assert [json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)] == [second["task_id"]]


def test_a_request_that_publishes_several_jobs_holds_one_broker_connection_at_a_time(tenant_user, broker):
    # given a request that enqueues three jobs (an admin action on three rows, say): Django's request_started
    publish_answers_deferred()
    emails = []
    for _ in range(3):
        emails.append(email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL))

        # then each publish takes the answer of the one before it first: one answer, one connection, outstanding
        assert len(_web_request.answers) == 1

    publish_answers_read()  # request_finished
    assert sorted(json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)) == sorted(
        email.job_id for email in emails
    )
    assert all(job.published_at is not None for job in Job.objects.all())


def test_a_refused_push_drops_its_connection_so_no_answer_is_left_for_its_next_user(broker, queue_refuses_pushes):
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    confirm = job_broker._sent(client, [("lpush", QUEUE, "message"), ("publish", "bench-events", "event")])

    with pytest.raises(redis.ResponseError):
        confirm()  # the push's answer is an error; the event's answer (a count) is left unread

    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command("PING")
        assert connection.read_response() in (b"PONG", "PONG")  # not the count left over from the refused publish
    finally:
        pool.release(connection)


def test_outside_a_web_request_a_publish_waits_for_the_answer(tenant_user, queue_refuses_pushes):
    email = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)

    assert Job.objects.get(task_id=email.job_id).published_at is None  # refused, and unmarked at once
