"""PostgreSQL cut off without a word (its host crashed, or a network that drops packets): no reset, no refusal, just
silence. Requests must answer 503 before the web server's timeout kills them, not hang.

The silence is made with iptables, dropping every packet to a forwarder between the web server and PostgreSQL, so
only this test's connections are cut; skipped where iptables cannot be used (not root, not installed).
"""

import os
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
from tests.conftest import database_url_for_subprocesses, free_port, start_web
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
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
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
        self.listener.close()


@pytest.fixture
def database_behind_a_forwarder():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    if not _iptables_usable():
        pytest.skip("needs iptables, as root, to drop packets")
    params = connection.get_connection_params()
    forwarder = Forwarder((params.get("host") or "127.0.0.1", int(params.get("port") or 5432)))
    url = database_url_for_subprocesses().replace(f":{params.get('port') or 5432}/", f":{forwarder.port}/", 1)
    yield forwarder, url
    forwarder.close()


def test_requests_answer_503_before_the_web_timeout_while_the_database_is_silent(
    database_behind_a_forwarder, api, tmp_path
):
    forwarder, database_url = database_behind_a_forwarder
    port = free_port()
    web = start_web(port, tmp_path / "web.log", "--workers", "1", "--timeout", str(web_timeout_seconds()),
                    DATABASE_URL=database_url)  # fmt: skip
    token = token_for(api.user)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Token {token}"}
    rule = ["INPUT", "-p", "tcp", "--dport", str(forwarder.port), "-j", "DROP"]
    try:
        # the web process holds a connection to the database through the forwarder (CONN_MAX_AGE keeps it)
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
