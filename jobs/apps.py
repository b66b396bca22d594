from django.apps import AppConfig
from django.core.signals import request_finished, request_started
from django.db.models.signals import post_delete, post_save


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from django_celery_results.models import TaskResult

        from jobs.models import Job
        from jobs.services import publish_answers_deferred, publish_answers_read

        # Web processes keep statuses in memory (jobs.localcache). The result backend invalidates each state it
        # stores; these cover the rest: results edited or deleted in the admin, jobs and results pruned or deleted
        # (a Job is never saved again after it is accepted but by a cancel, which invalidates itself: jobs.services).
        post_save.connect(_status_changed, sender=TaskResult, dispatch_uid="status-cache-result-save")
        post_delete.connect(_status_changed, sender=TaskResult, dispatch_uid="status-cache-result-delete")
        post_delete.connect(_status_changed, sender=Job, dispatch_uid="status-cache-job-delete")

        # An API request's publishes are answered by the broker after its response (jobs.services).
        request_started.connect(publish_answers_deferred, dispatch_uid="publish-answers-deferred")
        request_finished.connect(publish_answers_read, dispatch_uid="publish-answers-read")


def _status_changed(*, instance, **kwargs) -> None:
    from jobs.localcache import invalidate

    invalidate("status", instance.task_id)
