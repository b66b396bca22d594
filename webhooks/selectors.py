"""Reads for the webhooks app."""

from datetime import date, datetime

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from webhooks.models import WebhookEvent, WebhookSource


def webhook_source_get_active(*, slug: str) -> WebhookSource | None:
    """The active source with this slug; None for unknown and inactive alike (both answer 404)."""
    return WebhookSource.objects.filter(slug=slug, is_active=True).first()


def webhook_source_secrets(*, source: WebhookSource) -> list[str]:
    """The secrets that verify deliveries now: the current one, and the previous one until its grace ends."""
    secrets = [source.signing_secret]
    expires_at = source.previous_secret_expires_at
    if source.previous_secret and expires_at is not None and expires_at > timezone.now():
        secrets.append(source.previous_secret)
    return secrets


def webhook_events_for_tenant(*, tenant_id: int, since: datetime) -> QuerySet[WebhookEvent]:
    """The events about a tenant received since ``since``, newest first (for activity reports)."""
    return WebhookEvent.objects.filter(tenant_id=tenant_id, received_at__gte=since).select_related("source")


def webhook_events_processed_per_day(*, tenant_id: int, since: datetime) -> dict[date, int]:
    """How many of the tenant's events were processed each day since ``since`` (by processed_at), for activity reports.

    Only events whose effect was applied: ignored ones (a type nothing handles) and failed ones also have a
    processed_at, but a reader of "webhooks processed" does not count them.
    """
    rows = (
        WebhookEvent.objects.filter(tenant_id=tenant_id, status=WebhookEvent.Status.PROCESSED, processed_at__gte=since)
        .annotate(day=TruncDate("processed_at"))
        .values("day")
        .annotate(n=Count("pk"))
    )
    return {row["day"]: row["n"] for row in rows}
