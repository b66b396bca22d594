from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_celery_results.models import TaskResult


class Job(models.Model):
    """The record of one piece of accepted work: who asked, what, and whether it reached the broker.

    Its state while running and its outcome live in django-celery-results' TaskResult (joined on the task id as
    ``job.result``); this row is what survives a broker that lost its messages, and what the relay republishes.
    """

    task_id = models.CharField(max_length=255, unique=True, help_text="the public id: the Celery task id")
    # db_index off: job_tenant_recent_idx starts with the tenant (an index of its own would be written on every insert
    # and read by nothing)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="jobs", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    kind = models.CharField(max_length=100, help_text="what the job does, e.g. send_email")
    task_name = models.CharField(max_length=255)
    kwargs = models.JSONField(default=dict, blank=True)
    accepted_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when it was handed to the broker (written as it is accepted, emptied if the broker refused it); "
        "empty = waiting for the relay",
    )
    publish_count = models.PositiveIntegerField(default=0)
    run_count = models.PositiveIntegerField(default=0, help_text="times a worker started it, retries included")
    crash_count = models.PositiveIntegerField(
        default=0, db_default=0, help_text="starts that found the start before them unfinished: its worker died"
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    canceled_by = models.ForeignKey(  # indexed where set (job_canceled_by_idx): a new job has none
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    result = models.ForeignObject(
        TaskResult,
        on_delete=models.DO_NOTHING,
        from_fields=["task_id"],
        to_fields=["task_id"],
        null=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-accepted_at"]
        indexes = [
            models.Index(fields=["tenant", "-accepted_at"], name="job_tenant_recent_idx"),
            models.Index(fields=["kind", "-accepted_at"], name="job_kind_recent_idx"),
            models.Index(fields=["accepted_at"], name="job_accepted_idx"),
            models.Index(fields=["accepted_at"], condition=Q(published_at__isnull=True), name="job_unpublished_idx"),
            models.Index(fields=["canceled_by"], condition=Q(canceled_by__isnull=False), name="job_canceled_by_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.task_id}"


class IdempotencyKey(models.Model):
    """The first answer to a POST that carried an Idempotency-Key, replayed for repeats within the TTL."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_key_unique_per_tenant")]

    def __str__(self) -> str:
        return self.key
