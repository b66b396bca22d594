"""Django's PostgreSQL backend with a health check that costs no round trip.

With ``CONN_HEALTH_CHECKS`` Django checks a kept connection before the first query of every request and of every task
(``close_old_connections`` between them), and the stock check sends ``SELECT 1``: a round trip each time, one of three
on a status poll, more with the database on another host. A connection the server has closed (a restart, a crash,
``pg_terminate_backend``, ``idle_session_timeout``) has something to read while it sits idle: the server's last
message, or the end of the stream. So an idle connection with nothing to read is usable without asking; anything
else (something to read, a transaction open or failed, errors seen since the last check) gets the stock check.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is not None and not self.errors_occurred and self._idle_and_nothing_to_read():
            return True
        return super().is_usable()

    def _idle_and_nothing_to_read(self) -> bool:
        connection = self.connection
        try:
            if connection.closed or connection.info.transaction_status != pq.TransactionStatus.IDLE:
                return False
            poller = select.poll()
            poller.register(connection.fileno(), select.POLLIN)
            return not poller.poll(0)  # POLLIN, or POLLHUP / POLLERR, which poll always reports
        except (OSError, ValueError):
            return False
