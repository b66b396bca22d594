"""jobs.broker writes a job's message to Redis itself: it must be the message Celery's send_task writes, key by key."""

import base64
import json
from collections import OrderedDict

import pytest
import redis
from celery import signals
from celery.utils.saferepr import saferepr

import notifications.tasks  # noqa: F401 - the tasks compared below, registered as in a worker
import reports.tasks  # noqa: F401
import webhooks.tasks  # noqa: F401
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


def published(client, queue: str, publish, task_id: str = "t-1") -> tuple[dict, dict]:
    """The message ``publish()`` puts on ``queue``'s list and the task-sent event it publishes for ``task_id``."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    events = client.pubsub()
    events.subscribe(f"/{db}.celeryev/task.sent")  # pub/sub spans databases: only this one's, only this event
    events.get_message(timeout=1)  # the subscription's confirmation
    publish()
    message = client.rpop(queue)
    event = None
    while event is None or json.loads(base64.b64decode(json.loads(event["data"])["body"]))["uuid"] != task_id:
        event = events.get_message(timeout=2)
        assert event is not None, "no task-sent event"
    events.close()
    assert message is not None
    return comparable(decoded(message)), comparable(decoded(event["data"])) | {"channel": event["channel"]}


@pytest.fixture
def ours_only(monkeypatch):
    """Run a publish with send_task out of reach: what it writes is jobs.broker's own."""

    def run(publish):
        def refuse(*args, **kwargs):
            raise AssertionError("send_task was called: jobs.broker did not write the message itself")

        with monkeypatch.context() as patch:
            patch.setattr(celery_app, "send_task", refuse)
            publish()

    return run


@pytest.mark.parametrize(
    ("task_name", "queue", "kwargs"),
    [
        ("notifications.send_email", "default", {"email_id": 7}),
        ("reports.generate_report", "reports", {"report_id": 12}),
        ("webhooks.process_webhook", "webhooks", {"event_id": 3, "note": "ü 'quoted' " + "x" * 2000}),
    ],
)
def test_the_message_and_its_sent_event_are_what_send_task_writes(client, ours_only, task_name, queue, kwargs):
    assert task_name in celery_app.tasks

    celery = published(client, queue, lambda: celery_app.send_task(
        task_name, kwargs=kwargs, task_id="t-1", time_limit=None, soft_time_limit=None))  # fmt: skip
    ours = published(client, queue, lambda: ours_only(lambda: broker.publish(
        celery_app, task_name=task_name, task_id="t-1", kwargs=kwargs)))  # fmt: skip

    assert ours == celery


def test_publish_signals_are_sent_as_send_task_sends_them_and_what_receivers_add_is_sent(client, ours_only):
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
        ours = published(client, "default", lambda: ours_only(lambda: broker.publish(
            celery_app, task_name="notifications.send_email", task_id="t-1", kwargs={"email_id": 1})))  # fmt: skip
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)

    assert ours == celery
    assert seen == celery_seen and [call[0] for call in seen] == ["before", "after"]
    assert (ours[0]["headers"]["stamp"], ours[0]["body"][1]["sent_at"]) == ("stamped", 1.5)


@pytest.fixture
def publish_retries():
    """Set the publish retry policy's max_retries for this test (the plan is read once per broker URL)."""
    policy = celery_app.conf.task_publish_retry_policy

    def use(retries: int) -> None:
        celery_app.conf.task_publish_retry_policy = {**policy, "max_retries": retries}
        broker._plan.cache_clear()

    yield use
    celery_app.conf.task_publish_retry_policy = policy
    broker._plan.cache_clear()


def test_a_connection_redis_closed_while_idle_is_replaced_without_a_retry(client, publish_retries):
    publish_retries(0)
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


def test_a_tasks_own_queue_beats_the_routes_as_in_send_task(client, ours_only):
    # given a task whose decorator names its queue (a route would send it to "default")
    @celery_app.task(name="notifications.own_queue", queue="emails", shared=False)
    def own_queue(email_id: int) -> None:  # pragma: no cover - never run
        pass

    try:
        celery = published(client, "emails", lambda: celery_app.send_task(
            "notifications.own_queue", kwargs={"email_id": 1}, task_id="t-1", time_limit=None,
            soft_time_limit=None))  # fmt: skip
        ours = published(client, "emails", lambda: ours_only(lambda: broker.publish(
            celery_app, task_name="notifications.own_queue", task_id="t-1", kwargs={"email_id": 1})))  # fmt: skip
    finally:
        celery_app._tasks.pop("notifications.own_queue", None)
        broker._route.cache_clear()

    assert ours == celery and ours[0]["properties"]["delivery_info"]["routing_key"] == "emails"


def test_a_router_function_may_route_by_arguments_so_send_task_routes_the_job(client, monkeypatch):
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **options: sent.append(options["kwargs"]))
    monkeypatch.setattr(celery_app.amqp.router, "routes", [*celery_app.amqp.router.routes, lambda *args: None])
    broker._route.cache_clear()
    try:
        broker.publish(celery_app, task_name="notifications.send_email", task_id="t-1", kwargs={"email_id": 1})
    finally:
        monkeypatch.undo()
        broker._route.cache_clear()

    assert sent == [{"email_id": 1}]
    assert client.llen("default") == 0


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


def _at_length(length: int) -> dict:
    """{"n": <a whole number>} whose repr is ``length`` characters long."""
    return {"n": int("9" * (length - len("{'n': }")))}


MAXSIZE = broker._plan(celery_app, celery_app.conf.broker_url).kwargsrepr_maxsize
PLAIN_IDS = [{}, {"email_id": 7}, {"report_id": 10**30, "user_id": -3}, _at_length(MAXSIZE)]
OTHERS = [_at_length(MAXSIZE + 1), {"n": 10**1100}, {"flag": True}, {"x": None}, {"name": "it's"}, {"é": 1},
          {"a b": 1}, {"ids": [1, 2]}, OrderedDict(a=1)]  # fmt: skip


@pytest.mark.parametrize("kwargs", PLAIN_IDS + OTHERS)
def test_the_arguments_repr_is_celerys(kwargs):
    """Plain ids take a shortcut that must give saferepr's text exactly; anything else is saferepr's."""
    plan = broker._plan(celery_app, celery_app.conf.broker_url)
    assert broker._kwargs_repr(kwargs, plan) == saferepr(kwargs, plan.kwargsrepr_maxsize, maxlevels=plan.repr_maxlevels)


@pytest.mark.parametrize("kwargs", PLAIN_IDS)
def test_plain_ids_take_the_shortcut(kwargs, monkeypatch):
    monkeypatch.setattr(broker, "saferepr", lambda *args, **kwargs: pytest.fail("saferepr called"))
    assert broker._kwargs_repr(kwargs, broker._plan(celery_app, celery_app.conf.broker_url)) == repr(kwargs)


@pytest.mark.parametrize("maxsize, maxlevels", [(None, 3), (1024, 0), (1024, -1)])
def test_settings_the_shortcut_does_not_follow_leave_it_to_saferepr(maxsize, maxlevels):
    plan = broker._plan(celery_app, celery_app.conf.broker_url)._replace(kwargsrepr_maxsize=maxsize,
                                                                        repr_maxlevels=maxlevels)  # fmt: skip
    kwargs = {"email_id": 7}
    assert broker._kwargs_repr(kwargs, plan) == saferepr(kwargs, maxsize, maxlevels=maxlevels)
