"""Django's PostgreSQL backend with a health check that usually costs no round trip.

With ``CONN_HEALTH_CHECKS`` Django checks a kept connection before the first query of every request and of every task
(``close_old_connections`` between them), and the stock check sends ``SELECT 1``: a round trip each time, one of three
on a status poll, more with the database on another host. Under load a connection is used every few milliseconds, and
one the server has closed since (a restart, a PostgreSQL process crash, ``pg_terminate_backend``,
``idle_session_timeout``) has something to read while it sits idle: the server's last message, or the end of the
stream. So a connection used within the last ``QUIET_SECONDS``, idle, with nothing to read, is taken as usable
without asking.

Everything else gets the stock check: a connection quiet for longer (a NAT or load balancer that forgot it, a database
host that rebooted or failed over, send nothing until the client speaks; only a round trip finds out), one with
something to read, one inside a transaction, or one that has seen errors. What is given up: a server that goes away
in the moment between its last answer and the check (its goodbye not yet arrived, about a millisecond), or a network
path that dies within ``QUIET_SECONDS`` of the last query, fails that request's first query instead of being replaced
before it — as any failure just after the stock check does.
"""

import select
import time

from django.db.backends.postgresql import base
from psycopg import pq

QUIET_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _used_at = float("-inf")

    def _prepare_cursor(self, cursor):
        # Every cursor passes here, Django's own and those it did not make (jobs.sql.prepared_cursor's)
        self._used_at = time.monotonic()
        return super()._prepare_cursor(cursor)

    def is_usable(self) -> bool:
        if self.connection is not None and not self.errors_occurred and self._recently_used_and_quiet():
            return True
        return super().is_usable()

    def _recently_used_and_quiet(self) -> bool:
        if time.monotonic() - self._used_at > QUIET_SECONDS:
            return False
        connection = self.connection
        try:
            if connection.closed or connection.info.transaction_status != pq.TransactionStatus.IDLE:
                return False
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN)
            return not poller.poll(0)  # POLLIN, or POLLHUP / POLLERR, which poll always reports
        except Exception:  # noqa: BLE001 - no poll() (gevent, Windows), no socket: let the stock check decide
            return False
