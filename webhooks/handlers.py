"""What each source's event types do. A handler gets the event inside the processing transaction and applies its
effect with ordinary ORM writes; it raises WebhookEventInvalid for a payload it cannot act on (no retry)."""

import datetime
import logging
from collections.abc import Callable

from accounts.models import Tenant
from accounts.services import reserved_tenant_slugs
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

Handler = Callable[[WebhookEvent], None]

_HANDLERS: dict[tuple[str, str], Handler] = {}


class WebhookEventInvalid(Exception):
    """The payload cannot be acted on as it is; retrying would not help."""


def handles(source: str, event_type: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``event_type`` events of the source with slug ``source``."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[(source, event_type)] = handler
        return handler

    return register


def handler_for(*, source: str, event_type: str) -> Handler | None:
    return _HANDLERS.get((source, event_type))


def billing_tenant_slug(payload: dict) -> str | None:
    data = payload.get("data")
    slug = data.get("tenant") if isinstance(data, dict) else None
    return slug if isinstance(slug, str) and slug else None


# --- billing ----------------------------------------------------------------------------------------------------------


def _billing_tenant(event: WebhookEvent) -> Tenant:
    slug = billing_tenant_slug(event.payload)
    if slug is None:
        raise WebhookEventInvalid("data.tenant: a tenant slug is required.")
    if slug in reserved_tenant_slugs():  # the platform's own tenant has no subscription
        raise WebhookEventInvalid(f"data.tenant: {slug!r} is not a customer's tenant.")
    tenant = Tenant.objects.select_for_update(no_key=True).filter(slug=slug).first()
    if tenant is None:
        raise WebhookEventInvalid(f"data.tenant: no tenant with slug {slug!r}.")
    return tenant


@handles("billing", "subscription.renewed")
def subscription_renewed(event: WebhookEvent) -> None:
    tenant = _billing_tenant(event)
    raw = event.payload["data"].get("current_period_end")
    try:
        period_end = datetime.date.fromisoformat(raw)
    except (TypeError, ValueError):
        raise WebhookEventInvalid(f"data.current_period_end: {raw!r} is not a date (YYYY-MM-DD).") from None
    current = tenant.subscription_current_period_end
    if current is not None and period_end < current:
        # Deliveries come in any order (a provider retries a failed one later): an older renewal arriving after a
        # newer one must not take the period back.
        logger.info("Tenant %s: renewal until %s (webhook %s) is older than the period recorded, until %s; kept that",
                    tenant.slug, period_end, event.webhook_id, current)  # fmt: skip
        return
    tenant.subscription_current_period_end = period_end
    tenant.save(update_fields=["subscription_current_period_end"])
    logger.info("Tenant %s renewed until %s (webhook %s)", tenant.slug, period_end, event.webhook_id)


@handles("billing", "subscription.canceled")
def subscription_canceled(event: WebhookEvent) -> None:
    # A canceled subscription has no period to renew: clearing the end date takes the tenant out of the daily
    # renewal check, and the tenant's data stays as it is.
    tenant = _billing_tenant(event)
    tenant.subscription_current_period_end = None
    tenant.save(update_fields=["subscription_current_period_end"])
    logger.info("Tenant %s canceled its subscription (webhook %s)", tenant.slug, event.webhook_id)


# Each source may say who its events are about, so that events can be listed per tenant.
TENANT_RESOLVERS: dict[str, Callable[[dict], str | None]] = {"billing": billing_tenant_slug}
