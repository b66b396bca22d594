"""Reads for the webhooks app."""

from django.utils import timezone

from webhooks.models import WebhookSource


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
