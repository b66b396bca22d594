from datetime import timedelta

from django.utils import timezone

from tests.factories import TenantFactory
from webhooks.models import WebhookEvent
from webhooks.selectors import webhook_events_for_tenant
from webhooks.services import webhook_events_prune


def _event(source, status: str, age_days: int, tenant=None) -> WebhookEvent:
    return WebhookEvent.objects.create(
        source=source, webhook_id=f"msg_{status}_{age_days}", type="x", payload={"type": "x"}, status=status,
        tenant=tenant, received_at=timezone.now() - timedelta(days=age_days),
    )  # fmt: skip


def test_prune_deletes_old_settled_events_and_keeps_waiting_ones(billing_source):
    old_done = [_event(billing_source, status, 40) for status in ("processed", "ignored", "failed")]
    old_waiting = _event(billing_source, "received", 40)
    recent = _event(billing_source, "processed", 1)

    deleted = webhook_events_prune(received_before=timezone.now() - timedelta(days=30), batch_size=2)

    assert deleted == len(old_done)
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {old_waiting.pk, recent.pk}


def test_a_tenants_recent_events_are_listed_without_other_tenants(billing_source):
    acme, globex = TenantFactory(name="Acme"), TenantFactory(name="Globex")
    mine = _event(billing_source, "processed", 2, tenant=acme)
    _event(billing_source, "processed", 45, tenant=acme)
    _event(billing_source, "processed", 3, tenant=globex)

    events = webhook_events_for_tenant(tenant_id=acme.pk, since=timezone.now() - timedelta(days=30))

    assert list(events) == [mine]
