"""`make run`, as a new user runs it: migrations, schedules, the demo tenant, then web, worker and beat that work."""

import os
import re
import signal
import subprocess
import time

import httpx
import pytest
from django.conf import settings

from tests.conftest import PROJECT_DIR, free_port

pytestmark = pytest.mark.chaos  # slow and process-heavy, like the chaos suite


def test_make_run_brings_up_web_worker_and_beat_that_finish_a_job(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS", "DEBUG"))},
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
        "REDIS_URL": settings.REDIS_URL,  # the test Redis database, never a developer's
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    log = tmp_path / "make-run.log"
    process = subprocess.Popen(
        ["make", "run"], cwd=PROJECT_DIR, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        token = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"API token: (\w+)", log.read_text(errors="replace"))
            if found:
                token = found.group(1)
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.5)
        assert token, log.read_text(errors="replace")[-3000:]
        headers = {"Authorization": f"Token {token}"}

        accepted = httpx.post(
            f"{base}/api/send-email/", headers=headers, json={"to_email": "a@example.com", "subject": "s", "body": "b"}
        )
        assert accepted.status_code == 202, accepted.text
        status = {}
        while time.monotonic() < deadline and status.get("status") not in ("SUCCESS", "FAILURE"):
            status = httpx.get(f"{base}/api/tasks/{accepted.json()['task_id']}/", headers=headers).json()
            time.sleep(0.3)
        assert status["status"] == "SUCCESS", log.read_text(errors="replace")[-3000:]
        assert httpx.get(f"{base}/accounts/login/").status_code == 200
        output = log.read_text(errors="replace")
        assert "created  cleanup-old-logs" in output
        assert "beat: Starting" in output
        # with DEBUG on and a demo superuser whose password the README gives: this machine only, not the network
        assert f"Listening at: http://127.0.0.1:{port}" in output
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
