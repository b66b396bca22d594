from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboundEmail(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        SENT = "sent"
        FAILED = "failed"
        CANCELED = "canceled"  # its job was canceled before it was sent

    tenant = models.ForeignKey(  # indexed by email_tenant_recent_idx, which starts with it
        "accounts.Tenant", on_delete=models.CASCADE, related_name="emails", db_index=False
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", to_field="task_id", on_delete=models.SET_NULL, null=True, blank=True, related_name="emails"
    )
    to_email = models.EmailField()
    subject = models.CharField(max_length=255)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    message_id = models.CharField(max_length=255, blank=True, help_text="the same on every attempt")
    # Emails made by schedules carry a key such as "digest:2026-W47:user:12", so a re-run cannot make a second one
    # (email_dedupe_key_unique: only where there is one, so the emails without, nearly all, write no index entry).
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULL: no key, no entry
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="email_tenant_recent_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"], condition=Q(dedupe_key__isnull=False), name="email_dedupe_key_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email}"
