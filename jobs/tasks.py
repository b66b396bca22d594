import logging

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import worker_ready

from jobs.models import Job
from jobs.selectors import PROGRESS
from jobs.services import jobs_publish_pending

logger = logging.getLogger(__name__)


class JobTask(Task):
    """Base for every task that runs a Job: skips canceled jobs and reports progress in one shape."""

    def __call__(self, *args, **kwargs):
        task_id = self.request.id
        if task_id and Job.objects.filter(task_id=task_id, canceled_at__isnull=False).exists():
            # STARTED was already written by track_started; put the canceled state back and run nothing.
            self.backend.mark_as_revoked(task_id, reason="canceled", request=self.request)
            logger.info("Skipping canceled job %s", task_id)
            raise Ignore()
        return super().__call__(*args, **kwargs)

    def progress(self, *, current: int, total: int, status: str = "") -> None:
        self.update_state(state=PROGRESS, meta={"current": current, "total": total, "status": status})


@shared_task(name="jobs.publish_unpublished", ignore_result=True, time_limit=120, soft_time_limit=90)
def publish_unpublished_jobs() -> int:
    return jobs_publish_pending()


@worker_ready.connect
def _publish_pending_on_worker_start(sender, **kwargs) -> None:
    # A worker coming up is the moment the broker is known to answer again: flush what was left unpublished.
    publish_unpublished_jobs.apply_async()
