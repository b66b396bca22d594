"""jobs.broker writes a job's message to Redis itself: it must be the message Celery's send_task writes, key by key."""

import base64
import json

import pytest
import redis
from celery import signals

from config.celery import app as celery_app
from jobs import broker

# Different in every message, or in every process: compared by shape only.
VOLATILE = {("properties", "delivery_tag"), ("body", "timestamp"), ("body", "clock")}


@pytest.fixture
def client():
    celery_app.control.purge()
    yield redis.Redis.from_url(celery_app.conf.broker_url)
    celery_app.control.purge()


def decoded(raw: bytes) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def comparable(message: dict) -> dict:
    for part, key in VOLATILE:
        if isinstance(message[part], dict) and key in message[part]:
            message[part][key] = type(message[part][key]).__name__
    return message


def published(client, queue: str, publish) -> tuple[dict, dict]:
    """The message ``publish()`` puts on ``queue``'s list and the task-sent event it publishes."""
    events = client.pubsub()
    events.psubscribe("*celeryev*")
    events.get_message(timeout=1)  # the subscription's confirmation
    publish()
    message = client.rpop(queue)
    event = events.get_message(timeout=2)
    events.close()
    assert message is not None and event is not None
    return comparable(decoded(message)), comparable(decoded(event["data"])) | {"channel": event["channel"]}


@pytest.mark.parametrize(
    ("task_name", "queue", "kwargs"),
    [
        ("notifications.send_email", "default", {"email_id": 7}),
        ("reports.generate_report", "reports", {"report_id": 12}),
        ("webhooks.process_event", "webhooks", {"event_id": 3, "note": "ü 'quoted' " + "x" * 2000}),
    ],
)
def test_the_message_and_its_sent_event_are_what_send_task_writes(client, task_name, queue, kwargs):
    assert broker._route(celery_app, task_name) == queue

    celery = published(client, queue, lambda: celery_app.send_task(
        task_name, kwargs=kwargs, task_id="t-1", time_limit=None, soft_time_limit=None))  # fmt: skip
    ours = published(client, queue, lambda: broker.publish(celery_app, task_name=task_name, task_id="t-1",
                                                           kwargs=kwargs))  # fmt: skip

    assert ours == celery


def test_publish_signals_are_sent_as_send_task_sends_them_and_what_receivers_add_is_sent(client):
    seen = []

    def before(sender, body, exchange, routing_key, headers, properties, declare, retry_policy, **kwargs):
        headers["stamp"] = "stamped"
        body[1]["sent_at"] = 1.5
        seen.append(("before", sender, exchange, routing_key, sorted(properties), [q.name for q in declare],
                     retry_policy))  # fmt: skip

    def after(sender, body, headers, exchange, routing_key, **kwargs):
        seen.append(("after", sender, headers["id"], headers["stamp"], body[1], exchange, routing_key))

    signals.before_task_publish.connect(before, weak=False)
    signals.after_task_publish.connect(after, weak=False)
    try:
        celery = published(client, "default", lambda: celery_app.send_task(
            "notifications.send_email", kwargs={"email_id": 1}, task_id="t-1", time_limit=None,
            soft_time_limit=None))  # fmt: skip
        celery_seen = seen.copy()
        seen.clear()
        ours = published(client, "default", lambda: broker.publish(
            celery_app, task_name="notifications.send_email", task_id="t-1", kwargs={"email_id": 1}))  # fmt: skip
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)

    assert ours == celery
    assert seen == celery_seen and [call[0] for call in seen] == ["before", "after"]
    assert (ours[0]["headers"]["stamp"], ours[0]["body"][1]["sent_at"]) == ("stamped", 1.5)


def test_a_connection_redis_closed_while_idle_is_replaced(client):
    plan = broker._plan(celery_app, celery_app.conf.broker_url)
    broker.publish(celery_app, task_name="notifications.send_email", task_id="t-1", kwargs={"email_id": 1})
    client.client_kill_filter(_id=plan.client.client_id())  # the pool's idle connection is now dead

    broker.publish(celery_app, task_name="notifications.send_email", task_id="t-2", kwargs={"email_id": 2})

    assert [decoded(raw)["headers"]["id"] for raw in client.lrange("default", 0, -1)] == ["t-2", "t-1"]


def test_a_publish_that_fails_is_tried_again_as_the_retry_policy_says(client, monkeypatch):
    execute = redis.client.Pipeline.execute
    failures = []

    def fails_first(pipe, *args, **kwargs):
        if len(failures) < celery_app.conf.task_publish_retry_policy["max_retries"]:
            failures.append(pipe.command_stack[0][0][0])
            pipe.reset()
            raise redis.exceptions.ConnectionError("connection reset by peer")
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", fails_first)
    broker.publish(celery_app, task_name="notifications.send_email", task_id="t-1", kwargs={"email_id": 1})

    assert failures == ["LPUSH", "LPUSH"]
    assert [decoded(raw)["headers"]["id"] for raw in client.lrange("default", 0, -1)] == ["t-1"]


def test_anything_it_does_not_write_itself_goes_through_send_task(client, monkeypatch):
    other = celery_app.__class__("other", broker="amqp://guest@127.0.0.1//", set_as_current=False)
    sent = []
    for app in (celery_app, other):
        monkeypatch.setattr(app, "send_task", lambda name, app=app, **options: sent.append((app.main, name)))

    # another broker
    broker.publish(other, task_name="notifications.send_email", task_id="t-2", kwargs={})
    # a transport option that changes where kombu puts messages
    options = celery_app.conf.broker_transport_options
    celery_app.conf.broker_transport_options = {**options, "global_keyprefix": "app:"}
    broker._plan.cache_clear()
    try:
        broker.publish(celery_app, task_name="notifications.send_email", task_id="t-3", kwargs={})
    finally:
        celery_app.conf.broker_transport_options = options
        broker._plan.cache_clear()

    assert sent == [("other", "notifications.send_email"), (celery_app.main, "notifications.send_email")]
    assert client.llen("default") == 0
