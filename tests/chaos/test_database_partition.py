"""PostgreSQL cut off without a word (its host crashed, or a network that drops packets): no reset, no refusal, just
silence. Requests must answer 503 before the web server's timeout kills them, not hang.

The silence is made with iptables, dropping every packet to a forwarder between the web server and PostgreSQL, so
only this test's connections are cut; skipped where iptables cannot be used (not root, not installed).
"""

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid

import httpx
import pytest
from django.db import connection

from tests.chaos.test_redis_hang import EMAIL, web_timeout_seconds
from tests.conftest import database_url_for_subprocesses, free_port, start_web, wait_until
from tests.factories import token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def _iptables_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    return subprocess.run(["iptables", "-L", "INPUT", "-n"], capture_output=True).returncode == 0


class Forwarder:
    """A TCP forwarder on a port of its own to ``target``: the port the test cuts."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sockets: list[socket.socket] = []
        self.closed = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            if self.closed:  # accepted as it was being closed
                self.close()
                return
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                sock.close()

    def close(self) -> None:
        """Stop, and close every connection it carried (or the test database could not be dropped after the run)."""
        self.closed = True
        self.listener.close()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


RULE_TAG = "jobs-test-database-partition"


def _remove_rules_left_behind() -> None:
    """Rules of an earlier run killed before it could remove its own (they name an ephemeral port)."""
    listed = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, check=True).stdout
    for line in listed.splitlines():
        if RULE_TAG in line and line.startswith("-A "):
            subprocess.run(["iptables", "-D", *shlex.split(line)[1:]], check=False)


@pytest.fixture
def database_behind_a_forwarder():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if not _iptables_usable():
        pytest.skip("needs iptables, as root, to drop packets")
    _remove_rules_left_behind()
    params = connection.get_connection_params()
    forwarder = Forwarder((params.get("host") or "127.0.0.1", int(params.get("port") or 5432)))
    url = database_url_for_subprocesses().replace(f":{params.get('port') or 5432}/", f":{forwarder.port}/", 1)
    yield forwarder, url
    forwarder.close()
    # A connection the web server began while the packets were dropped can get through once they are not, after the
    # forwarder was closed, and stay open at the database: end every session left on it, or it could not be dropped.
    wait_until(_alone_on_the_database, timeout=10, what="the forwarded sessions to end")


def _alone_on_the_database() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return not cursor.fetchall()


def test_requests_answer_503_before_the_web_timeout_while_the_database_is_silent(
    database_behind_a_forwarder, api, tmp_path
):
    forwarder, database_url = database_behind_a_forwarder
    port = free_port()
    web = start_web(port, tmp_path / "web.log", "--workers", "1", "--timeout", str(web_timeout_seconds()),
                    DATABASE_URL=database_url, TEST_CONN_MAX_AGE="60")  # fmt: skip
    token = token_for(api.user)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Token {token}"}
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(forwarder.port), "-m", "comment", "--comment", RULE_TAG,
            "-j", "DROP"]  # fmt: skip
    try:
        # the web process holds a connection to the database through the forwarder (kept: CONN_MAX_AGE 60)
        assert httpx.post(f"{base}/api/send-email/", json=EMAIL, headers=headers, timeout=30).status_code == 202
        subprocess.run(["iptables", "-I", *rule], check=True)
        try:
            answers = []
            for path in (f"/api/tasks/{uuid.uuid4()}/", "/api/send-email/"):  # the held connection, then a new one
                began = time.monotonic()
                if path.endswith("send-email/"):
                    response = httpx.post(base + path, json=EMAIL, headers=headers, timeout=60)
                else:
                    response = httpx.get(base + path, headers=headers, timeout=60)
                answers.append((response.status_code, response.text, time.monotonic() - began))
        finally:
            subprocess.run(["iptables", "-D", *rule], check=True)
    finally:
        web.terminate()
        web.wait(30)

    for status, body, took in answers:
        assert status == 503, (status, body, (tmp_path / "web.log").read_text()[-3000:])
        assert "The database is unavailable" in body
        assert took < web_timeout_seconds(), f"answered after {took:.1f} s"
    # each way of waiting was cut short: the held connection by tcp_user_timeout, the new one by connect_timeout
    log = (tmp_path / "web.log").read_text()
    assert re.search(r"Database unavailable for GET /api/tasks/.*Connection timed out", log), log[-3000:]
    assert re.search(r"Database unavailable for POST /api/send-email/: connection timeout expired", log), log[-3000:]
