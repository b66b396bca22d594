"""The PostgreSQL health check (config/postgresql): a kept connection is checked before every request and task without a
round trip, and one the server has closed is still caught and replaced."""

import select

import psycopg
import pytest
from django.db import connection

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


def test_a_connection_the_server_ended_fails_the_check_and_the_next_query_gets_a_new_one():
    pid = backend_pid()
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    poller = select.poll()
    poller.register(connection.connection.fileno(), select.POLLIN)
    assert poller.poll(10_000), "the server's goodbye did not reach the socket"

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
