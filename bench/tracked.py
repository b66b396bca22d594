"""The throughput figure's job: a job like any other (a Job row written by ``job_enqueue``, published after commit,
its start counted, its states stored in the database by ``JobTask`` and our result backend) whose task does nothing.
Set against ``bench.bare.noop``, it measures what our tracking costs per task; the email jobs are measured beside it,
as what a real job costs. Bench-only; never in production."""

from celery import shared_task

from jobs.tasks import JobTask


@shared_task(bind=True, base=JobTask, name="bench.tracked_noop")
def tracked_noop(self) -> None:
    return None
