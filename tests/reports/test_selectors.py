"""What the activity report gathers before it is laid out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reports.selectors import activity_gather
from tests.factories import TenantFactory
from webhooks.models import WebhookEvent, WebhookSource

pytestmark = pytest.mark.django_db


def test_webhooks_processed_counts_only_events_whose_effect_was_applied():
    # given a tenant's events of every outcome over the last days, one too old, and another tenant's
    acme, other = TenantFactory(name="Acme"), TenantFactory(name="Other")
    source = WebhookSource.objects.create(slug="billing")
    now = timezone.now()
    events = [
        (acme, WebhookEvent.Status.PROCESSED, now),
        (acme, WebhookEvent.Status.PROCESSED, now - timedelta(days=3)),
        (acme, WebhookEvent.Status.FAILED, now),
        (acme, WebhookEvent.Status.IGNORED, now),
        (acme, WebhookEvent.Status.RECEIVED, None),
        (acme, WebhookEvent.Status.PROCESSED, now - timedelta(days=45)),
        (other, WebhookEvent.Status.PROCESSED, now),
    ]
    for n, (tenant, status, processed_at) in enumerate(events):
        WebhookEvent.objects.create(source=source, webhook_id=f"msg_{n}", type="subscription.renewed", payload={},
                                    tenant=tenant, status=status, processed_at=processed_at)  # fmt: skip

    # when the activity report gathers its data
    activity = activity_gather(tenant_id=acme.pk, days=30)

    # then "webhooks processed" is the two processed in the window, each on its day
    by_day = {day.day: day.webhooks for day in activity.days if day.webhooks}
    assert by_day == {timezone.localdate(now): 1, timezone.localdate(now - timedelta(days=3)): 1}
