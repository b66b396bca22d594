"""Celery's own commands, as an operator runs them against the project (`celery -A config …`): the result backend
they load needs Django set up, which Celery's Django fixup does only for workers and beat."""

import subprocess
import sys
import time

import pytest
from celery import states
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from tests.conftest import PROJECT_DIR, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)  # the command is another process


def celery(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", *args],
        cwd=PROJECT_DIR, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_celery_result_prints_what_the_backend_stored():
    celery_app.backend.store_result("a2c1a2a0-0b4e-4f4f-9a0e-6f1d3c1b2a10", {"answer": 42}, states.SUCCESS)

    assert celery("result", "a2c1a2a0-0b4e-4f4f-9a0e-6f1d3c1b2a10").strip() == "{'answer': 42}"


def test_celery_call_publishes_a_task_that_a_worker_runs(celery_worker):
    task_id = celery("call", "jobs.cleanup_old_logs").strip().splitlines()[-1]

    deadline = time.monotonic() + 60
    while not TaskResult.objects.filter(task_id=task_id, status=states.SUCCESS).exists():
        assert time.monotonic() < deadline, f"task {task_id} did not finish"
        time.sleep(0.1)
