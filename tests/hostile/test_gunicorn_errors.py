"""What gunicorn answers itself, before Django sees the request, is JSON too, with the web process started as the
Procfile starts it (its ``--config``, config/gunicorn.py)."""

import json
import re
import shlex
import socket
from pathlib import Path

import pytest

from tests.conftest import free_port, start_web, token_for
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # gunicorn must see the rows


def procfile_config() -> list[str]:
    """The ``--config`` argument of the Procfile's web command."""
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()
    web = shlex.split(re.search(r"^web:(.*)$", procfile, re.MULTILINE).group(1))
    return web[web.index("--config") : web.index("--config") + 2]


@pytest.fixture(scope="module")
def web(tmp_path_factory, django_db_setup):  # the test database first: the server is pointed at it
    port = free_port()
    process = start_web(port, tmp_path_factory.mktemp("web") / "web.log", *procfile_config())
    yield port
    process.terminate()
    process.wait(timeout=30)


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes as a request; return the answer's status, headers and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b"GET /api/tasks/" + b"a" * 9000 + b"/ HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
         "Request Header Fields Too Large"),
        (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n", 431,
         "Request Header Fields Too Large"),
        (b"NOT A REQUEST\r\n\r\n", 400, "Bad Request"),
    ],
    ids=["request line too long", "header too long", "too many headers", "not http"],
)  # fmt: skip
def test_what_gunicorn_refuses_is_answered_in_json(web, raw, status, says):
    answer_status, headers, body = exchange(web, raw)

    assert answer_status == status
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["detail"].startswith(says)


def test_a_long_request_line_within_gunicorns_largest_limit_reaches_django(web):
    token = token_for(UserFactory(tenant=TenantFactory(name="Acme")))
    raw = f"GET /api/tasks/{'a' * 6000}/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Token {token}\r\n\r\n".encode()

    status, headers, body = exchange(web, raw)

    assert status == 404, body  # Django's answer for a task id that does not exist, not gunicorn's 414
    assert headers["content-type"] == "application/json" and "detail" in json.loads(body)
