from django.conf import settings
from django.db import models
from django.utils import timezone


class Report(models.Model):
    """One requested document (a PDF report or the users CSV export) and what became of it.

    The file is written to Django's storage only once it is complete, under a key the server chooses
    (``reports/tenant-<id>/…``); a report that failed has no file and says why in ``error``.
    """

    class Type(models.TextChoices):
        USERS = "users", "Users"
        ACTIVITY = "activity", "Activity (last 30 days)"
        USERS_CSV = "users_csv", "Users export (CSV)"

    class Status(models.TextChoices):
        PENDING = "pending"
        GENERATING = "generating"
        COMPLETED = "completed"
        FAILED = "failed"

    tenant = models.ForeignKey(  # indexed by report_tenant_recent_idx, which starts with it
        "accounts.Tenant", on_delete=models.CASCADE, related_name="reports", db_index=False
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", to_field="task_id", on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    report_type = models.CharField(max_length=20, choices=Type.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    file = models.FileField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    # What the run found: row counts, per-row errors of an export, the progress total reached.
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    render_seconds = models.FloatField(null=True, blank=True, help_text="time spent laying out and writing the file")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="report_tenant_recent_idx")]

    def __str__(self) -> str:
        return f"{self.get_report_type_display()} #{self.pk} ({self.status})"

    @property
    def is_pdf(self) -> bool:
        return self.report_type != self.Type.USERS_CSV
