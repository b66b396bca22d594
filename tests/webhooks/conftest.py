"""Signing the way senders do (the Standard Webhooks reference library), and waiting for events to settle."""

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from math import floor

import pytest
from standardwebhooks.webhooks import Webhook

from webhooks.models import WebhookEvent, WebhookSource


@dataclass
class Delivery:
    """A signed delivery: the raw body and the three Standard Webhooks headers."""

    body: bytes
    headers: dict[str, str]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def sign_delivery(
    secret: str, payload: dict | str, *, webhook_id: str | None = None, at: datetime | None = None
) -> Delivery:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=at, data=body)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": signature,
    }
    return Delivery(body=body.encode(), headers=headers)


def post_delivery(client, delivery: Delivery, *, source: str = "billing"):
    return client.post(
        f"/api/webhooks/{source}/", data=delivery.body, content_type="application/json", headers=delivery.headers
    )


def renewal(tenant_slug: str, period_end: str = "2031-01-31") -> dict:
    return {"type": "subscription.renewed", "data": {"tenant": tenant_slug, "current_period_end": period_end}}


def wait_for_event(pk: int, statuses=("processed", "ignored", "failed"), timeout: float = 30) -> WebhookEvent:
    deadline = time.monotonic() + timeout
    event = WebhookEvent.objects.get(pk=pk)
    while event.status not in statuses and time.monotonic() < deadline:
        time.sleep(0.05)
        event.refresh_from_db()
    assert event.status in statuses, f"event {pk} is {event.status} after {timeout}s: {event.error}"
    return event


@pytest.fixture
def billing_source(db) -> WebhookSource:
    return WebhookSource.objects.create(slug="billing")
