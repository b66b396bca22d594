"""The stranded-job sweeper's view of live workers: what a worker holds is never republished, what nothing holds is."""

import time
from datetime import timedelta

import pytest
from celery.worker.control import Panel
from django.utils import timezone

from config.celery import app as celery_app
from jobs.control import HELD
from jobs.models import Job
from jobs.ops import workers_inspect
from jobs.recovery import jobs_recover_stranded
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def published_job() -> Job:
    """A job the database believes is in the broker's hands (its task only relays pending jobs: harmless if run)."""
    return Job.objects.create(
        task_id=f"recovery-{time.monotonic_ns()}", tenant=TenantFactory(), kind="test",
        task_name="jobs.publish_unpublished", published_at=timezone.now() - timedelta(minutes=1), publish_count=1,
    )  # fmt: skip


def held_by_the_worker(job: Job) -> Job:
    """The job's message taken by the worker and kept there, due in an hour (an ETA task)."""
    celery_app.send_task(job.task_name, task_id=job.task_id, countdown=3600)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if any(task["id"] == job.task_id for worker in workers_inspect() for task in worker.scheduled):
            return job
        time.sleep(0.2)
    raise AssertionError("the worker never reported the scheduled task")


def test_a_job_a_live_worker_holds_is_left_alone_and_a_job_nothing_holds_is_republished(celery_worker):
    held = held_by_the_worker(published_job())
    lost = published_job()  # its message never reached the broker (or Redis lost it)

    first = jobs_recover_stranded(grace=timedelta(0))
    second = jobs_recover_stranded(grace=timedelta(0))

    assert first == []  # a job must look stranded twice before it is republished
    assert second == [lost.task_id]
    lost.refresh_from_db()
    held.refresh_from_db()
    assert (lost.publish_count, held.publish_count) == (2, 1)


def test_a_worker_without_our_command_is_asked_celerys_questions_instead(celery_worker, monkeypatch):
    # given a worker from before jobs.control (a rolling deploy): it answers our broadcast with an error
    monkeypatch.delitem(Panel.data, HELD)
    held = held_by_the_worker(published_job())

    [worker] = workers_inspect()

    assert [task["id"] for task in worker.scheduled] == [held.task_id]
    assert jobs_recover_stranded(grace=timedelta(0)) == jobs_recover_stranded(grace=timedelta(0)) == []
