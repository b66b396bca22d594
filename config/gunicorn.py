"""gunicorn's settings for the Procfile's web process (``--config python:config.gunicorn``).

What gunicorn answers itself, before Django sees a request (a request line or headers over its limits, a request it
cannot parse), is JSON like every other error of the API, not an HTML page: ``{"detail": "<what was wrong>"}``, with
gunicorn's status (400, 414, 431, …). The request line may be as long as gunicorn allows (8190 bytes, not its default
4094), so a long path or query reaches Django and gets its own answer (a 404 for an unknown task id, say).
"""

import json

from gunicorn import util

limit_request_line = 8190


def _write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps({"detail": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = _write_error  # what gunicorn's workers call (gunicorn.workers.base.Worker.handle_error)
