import base64
import secrets

from django.db import models
from django.utils import timezone

SECRET_PREFIX = "whsec_"


def new_signing_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSource(models.Model):
    """A sender of webhooks, e.g. ``billing``: where it posts (``/api/webhooks/<slug>/``) and how it signs."""

    slug = models.SlugField(max_length=100, unique=True)
    tenant = models.ForeignKey(
        "accounts.Tenant",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_sources",
        help_text="the tenant this integration belongs to; empty for platform-wide sources such as billing",
    )
    signing_secret = models.CharField(max_length=200, default=new_signing_secret)
    previous_secret = models.CharField(max_length=200, blank=True)
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="until then the previous secret also verifies (after a rotation)"
    )
    is_active = models.BooleanField(default=True, help_text="inactive sources answer 404")
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class WebhookEvent(models.Model):
    """One delivery accepted from a source, stored before it was answered; processed by ``process_webhook``."""

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        IGNORED = "ignored"
        FAILED = "failed"

    # indexed by webhook_event_unique_per_source, which starts with it
    source = models.ForeignKey(WebhookSource, on_delete=models.PROTECT, related_name="events", db_index=False)
    webhook_id = models.CharField(max_length=255, help_text="the provider's webhook-id header")
    type = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    headers = models.JSONField(default=dict, blank=True)
    tenant = models.ForeignKey(
        "accounts.Tenant",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_events",
        help_text="who the event is about, when known (the source's tenant, or e.g. billing's data.tenant)",
        db_index=False,  # indexed by webhook_event_tenant_idx, which starts with it
    )
    job = models.ForeignKey(
        "jobs.Job",
        to_field="task_id",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_events",
        help_text="the first processing job; reprocessing makes new jobs",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "webhook_id"], name="webhook_event_unique_per_source"),
        ]
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="webhook_event_tenant_idx"),
            models.Index(fields=["status", "-received_at"], name="webhook_event_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.webhook_id} {self.type}"
