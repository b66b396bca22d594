"""The PostgreSQL health check (config/postgresql): a kept connection in steady use is checked before every request and
task without a round trip; one the server has closed is still caught and replaced; anything unusual gets the stock
SELECT 1."""

import select
import time

import psycopg
import pytest
from django.db import connection, transaction

from config.postgresql.base import QUIET_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the check is PostgreSQL's")


class CursorSpy:
    """Counts the driver cursors opened on the connection: the stock check's SELECT 1 opens one."""

    def __init__(self, monkeypatch):
        self.opened = 0
        real = connection.connection.cursor

        def cursor(*args, **kwargs):
            self.opened += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(connection.connection, "cursor", cursor)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def other_connection_params() -> dict:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return params


def socket_readable(timeout_ms: int = 10_000) -> bool:
    poller = select.poll()
    poller.register(connection.connection.fileno(), select.POLLIN)
    return bool(poller.poll(timeout_ms))


def health_check() -> None:
    """What Django does before the first query of a request or task when CONN_HEALTH_CHECKS is on."""
    connection.health_check_done = False
    connection.close_if_health_check_failed()


def test_an_idle_healthy_connection_passes_without_a_query(monkeypatch):
    pid = backend_pid()
    spy = CursorSpy(monkeypatch)

    health_check()

    assert spy.opened == 0
    assert connection.connection is not None and backend_pid() == pid


def test_a_connection_quiet_for_longer_gets_the_stock_check(monkeypatch):
    backend_pid()
    monkeypatch.setattr(connection, "_used_at", time.monotonic() - QUIET_SECONDS - 1)
    spy = CursorSpy(monkeypatch)

    health_check()

    assert spy.opened == 1
    assert connection.connection is not None


def test_inside_a_transaction_the_stock_check_runs(monkeypatch):
    backend_pid()
    with transaction.atomic():
        backend_pid()  # BEGIN sent: the session is in a transaction
        spy = CursorSpy(monkeypatch)
        health_check()
    assert spy.opened == 1


def test_a_live_connection_with_a_message_waiting_is_asked_and_kept(monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute("LISTEN health_check_test")
    pid = backend_pid()
    with psycopg.connect(**other_connection_params(), autocommit=True) as other:
        other.execute("NOTIFY health_check_test")
    assert socket_readable(), "the notification did not arrive"
    spy = CursorSpy(monkeypatch)

    health_check()

    assert spy.opened == 1
    assert backend_pid() == pid


def test_a_connection_the_server_ended_fails_the_check_and_the_next_query_gets_a_new_one():
    pid = backend_pid()
    with psycopg.connect(**other_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert socket_readable(), "the server's goodbye did not reach the socket"

    health_check()

    assert connection.connection is None  # closed by the check, not handed to a query
    assert backend_pid() != pid


def test_after_an_error_the_stock_check_asks_the_server(monkeypatch):
    backend_pid()
    connection.errors_occurred = True
    spy = CursorSpy(monkeypatch)

    health_check()

    assert spy.opened == 1
    assert connection.connection is not None


def test_a_connection_whose_last_query_was_the_prepared_insert_passes_without_a_query(monkeypatch, tenant_user):
    from notifications.services import email_request

    backend_pid()
    monkeypatch.setattr("jobs.services._send", lambda job, answers=None: True)  # rows only: nothing reaches the broker
    monkeypatch.setattr(connection, "_used_at", time.monotonic() - QUIET_SECONDS - 1)
    email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.pk, to_email="hc@example.com", subject="s",
                  body="b")  # fmt: skip  # an enqueue whose token was cached: its one query (jobs.sql.prepared_cursor)
    spy = CursorSpy(monkeypatch)

    health_check()

    assert spy.opened == 0
