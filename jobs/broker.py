"""A job's message put on a Redis broker in one round trip: the message Celery's ``send_task`` would put there.

Celery's publish costs about 1 ms of CPU a job, most of it in kombu: a new redis-py client for each publish, and the
task-sent event sent as a second publish through the same machinery. Every job is published on the enqueue hot path,
so where the broker is a plain Redis, this module writes the message itself, as kombu's Redis transport lays it out
(LPUSH of a JSON envelope onto the queue's list), with the task-sent event (PUBLISH on the events channel) in the same
pipeline, through one client kept per process, and sends the publish signals as ``send_task`` does. Anything it does
not handle goes through ``send_task``: another broker or URL scheme, transport options that change key names,
priorities, queues that expire, another serializer or compression.

One difference, on purpose: published from inside a task (the relay, the sweeper, a digest making emails), the job
is its own root, with no parent, where ``send_task`` would make it the running task's child and add it to that task's
stored children (thousands, for a digest). Jobs stand alone; each has its Job row.

``tests/jobs/test_broker.py`` checks the message against the one ``send_task`` writes, key by key.
"""

import base64
import os
import socket
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

import redis
from celery import Celery, signals
from celery.app.routes import MapRoute
from celery.utils.saferepr import saferepr
from celery.utils.time import utcoffset
from kombu.utils.json import dumps
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

# Transport options that change where kombu puts a message, or how it connects, that this module does not apply: with
# any of them set, send_task.
_UNHANDLED_OPTIONS = (
    "global_keyprefix", "fanout_prefix", "fanout_patterns", "sep", "priority_steps", "queue_order_strategy",
    "health_check_interval", "retry_on_timeout", "max_connections", "client_name", "socket_keepalive",
    "socket_keepalive_options", "username", "password", "credential_provider",
)  # fmt: skip


def publish(
    app: Celery, *, task_name: str, task_id: str, kwargs: dict, url: str | None = None, unconfirmed: bool = False
) -> Callable[[], None] | None:
    """Publish the job as ``app.send_task(task_name, kwargs=kwargs, task_id=task_id)`` would, without time limits in
    the message, to ``url`` (the app's ``broker_write_url`` unless given: the caller may have read it already); raises
    what the broker raises (a RedisError, an OSError or kombu's errors) when it cannot.

    ``unconfirmed``: return once the message is sent, without waiting for Redis to answer, and return what reads its
    answer (raising as the publish would); the connection is the caller's until then. None when already answered
    (by ``send_task``, which always waits).
    """
    plan = _plan(app, (url or app.conf.broker_write_url) or "")
    queue = plan and _route(app, task_name)
    if not queue or signals.task_sent.receivers:  # task_sent: deprecated, but send_task still sends it
        app.send_task(task_name, kwargs=kwargs, task_id=task_id, time_limit=None, soft_time_limit=None)
        return None
    origin = _nodename(os.getpid())
    kwargsrepr = _kwargs_repr(kwargs, plan)
    headers = {
        "lang": "py", "task": task_name, "id": task_id, "shadow": None, "eta": None, "expires": None, "group": None,
        "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id, "parent_id": None,
        "argsrepr": "()", "kwargsrepr": kwargsrepr, "origin": origin, "ignore_result": None,
        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }  # fmt: skip
    properties = {"correlation_id": task_id, "reply_to": app.thread_oid}
    body = ((), kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
    if signals.before_task_publish.receivers:  # as send_task sends it: receivers may add to the headers or body
        signals.before_task_publish.send(sender=task_name, body=body, exchange="", routing_key=queue,
                                         declare=[app.amqp.queues[queue]], headers=headers, properties=properties,
                                         retry_policy=dict(app.conf.task_publish_retry_policy))  # fmt: skip
    properties |= {
        "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
        "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }  # fmt: skip
    commands = [("lpush", queue, _envelope(body, headers, properties))]
    if plan.events_channel:
        event = {
            "hostname": origin, "utcoffset": utcoffset(), "pid": os.getpid(), "clock": app.clock.forward(),
            "uuid": task_id, "root_id": task_id, "parent_id": None, "name": task_name, "args": "()",
            "kwargs": kwargsrepr, "retries": 0, "eta": None, "expires": None, "queue": queue, "exchange": "",
            "routing_key": queue, "timestamp": time.time(), "type": "task-sent",
        }  # fmt: skip
        event_properties = {
            "delivery_mode": 1, "delivery_info": {"exchange": plan.event_exchange, "routing_key": "task.sent"},
            "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        }  # fmt: skip
        commands.append(("publish", plan.events_channel, _envelope(event, {"hostname": origin}, event_properties)))
    confirm = None
    for attempt in range(plan.retries + 1):
        try:
            if unconfirmed:
                confirm = _sent(plan.client, commands)
            else:
                pipe = plan.client.pipeline(transaction=False)  # one round trip; a pipeline empties itself when run
                for command, *args in commands:
                    getattr(pipe, command)(*args)
                pipe.execute()
            break
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # As kombu's retry policy would: again, after its wait, on a fresh connection (a failed one leaves the
            # pool). A push that reached Redis before its answer was lost is then there twice; the job runs once.
            if attempt == plan.retries:
                raise
            first, step, longest = plan.intervals
            time.sleep(min(first + step * attempt, longest))
    if signals.after_task_publish.receivers:
        signals.after_task_publish.send(sender=task_name, body=body, headers=headers, exchange="", routing_key=queue)
    return confirm


def _sent(client: redis.Redis, commands: list[tuple]) -> Callable[[], None]:
    """Send the commands (as a pipeline would, in one write) on a connection of the client's pool, and return what
    reads their answers and gives the connection back to the pool; it raises an error answer or a failed read, as
    the pipeline would, and the connection is then dropped (answers left unread would answer someone else)."""
    pool = client.connection_pool
    connection = pool.get_connection()  # connected, and checked for a server that closed it meanwhile
    try:
        connection.send_packed_command(connection.pack_commands([(name.upper(), *args) for name, *args in commands]))
    except BaseException:
        connection.disconnect()
        pool.release(connection)
        raise

    def confirm() -> None:
        try:
            for _ in commands:
                connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    return confirm


def _kwargs_repr(kwargs: dict, plan: "_Plan") -> str:
    """The message's ``kwargsrepr``, Celery's ``saferepr`` of the arguments; for what our jobs take (a row's id or two:
    names that are identifiers, whole numbers), that is plain ``repr``'s text, at a tenth of the cost."""
    plain = type(kwargs) is dict and isinstance(plan.kwargsrepr_maxsize, int) and plan.repr_maxlevels > 0
    if plain and all(type(key) is str and key.isidentifier() and key.isascii() and type(value) is int
                     for key, value in kwargs.items()):  # fmt: skip
        text = repr(kwargs)
        if len(text) <= plan.kwargsrepr_maxsize:
            return text
    return saferepr(kwargs, plan.kwargsrepr_maxsize, maxlevels=plan.repr_maxlevels)


def _envelope(body, headers: dict, properties: dict) -> str:
    """kombu's Redis transport's JSON envelope around a JSON body (base64, as it encodes bodies)."""
    encoded = base64.b64encode(dumps(body).encode()).decode()
    return dumps({"body": encoded, "content-encoding": "utf-8", "content-type": "application/json",
                  "headers": headers, "properties": properties})  # fmt: skip


@cache
def _route(app: Celery, task_name: str) -> str | None:
    """Where ``send_task`` would send the task, as a queue name, when it goes straight to a queue's list, else None.

    As send_task does: the options the task was declared with (its decorator's ``queue`` beats a route), then the
    routes; routes are settings, so the answer is kept. A router function might route by the job's arguments, and
    any other option (a priority, an exchange, an expiry) changes the message: send_task then.
    """
    task = app._tasks.get(task_name)  # send_task's lookup: the registry, without finalizing the app
    options = {}
    if task is not None:
        # What send_task merges into the route. Left out: the time limits (not in our messages) and what this module
        # writes anyway (every task names a serializer, the app's).
        written = {("serializer", "json"), ("delivery_mode", "persistent"), ("delivery_mode", 2)}
        options = {
            key: value
            for key, value in task._get_exec_options().items()
            if value is not None and key not in ("time_limit", "soft_time_limit") and (key, value) not in written
        }
    router = app.amqp.router
    if set(options) - {"queue"} or any(not isinstance(route, MapRoute) for route in router.routes):
        return None
    options = router.route(options, task_name, (), {}, task)
    queue = options.get("queue")
    if queue is None or set(options) - {"queue"} or queue.exchange.type != "direct" or queue.expires is not None:
        return None
    if queue.queue_arguments or queue.max_priority is not None:
        return None
    return queue.name


class _Plan(NamedTuple):
    client: redis.Redis
    retries: int
    intervals: tuple[float, float, float]  # the retry policy's first wait, step and longest wait, in seconds
    events_channel: str | None
    event_exchange: str
    kwargsrepr_maxsize: int
    repr_maxlevels: int


@cache
def _plan(app: Celery, url: str) -> _Plan | None:
    """How this process publishes to the broker at ``url``, or None when this module cannot (use send_task).

    Read from the app's settings once per broker URL (tests switch URLs): the client (redis-py pools are safe across
    forks and threads) with the timeouts of kombu's, how many times to try again, as the publish retry policy says
    (config/wsgi.py shortens both in web processes, before their first publish), and the channel kombu publishes
    task-sent events on, when they are sent.
    """
    conf = app.conf
    options = conf.broker_transport_options or {}
    policy = conf.task_publish_retry_policy or {}
    if (
        not url.startswith("redis://")
        or ";" in url  # failover URLs
        or conf.broker_use_ssl
        or any(option in options for option in _UNHANDLED_OPTIONS)
        or conf.task_protocol != 2
        or conf.task_serializer != "json"
        or conf.event_serializer != "json"
        or conf.task_compression
        or conf.task_default_priority is not None
        or conf.task_default_delivery_mode not in ("persistent", 2)
        or conf.task_default_exchange_type != "direct"
        or (conf.task_publish_retry and policy.get("max_retries", 3) is None)  # kombu: retry for ever
    ):
        return None
    client = redis.Redis.from_url(
        url,
        socket_timeout=options.get("socket_timeout"),
        socket_connect_timeout=options.get("socket_connect_timeout"),
        retry=Retry(NoBackoff(), 0),
    )
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return _Plan(
        client=client,
        retries=policy.get("max_retries", 3) if conf.task_publish_retry else 0,
        intervals=(policy.get("interval_start", 0), policy.get("interval_step", 0.2), policy.get("interval_max", 1)),
        events_channel=f"/{db}.{conf.event_exchange}/task.sent" if conf.task_send_sent_event else None,
        event_exchange=conf.event_exchange,
        kwargsrepr_maxsize=app.amqp.kwargsrepr_maxsize,
        repr_maxlevels=conf.task_repr_maxlevels,
    )


@cache
def _nodename(pid: int) -> str:
    """Celery's ``anon_nodename()`` for this process, the message's origin and the event's hostname."""
    return f"gen{pid}@{socket.gethostname()}"
