"""Webhook sources and events: receive (store + enqueue in one transaction), process once, reprocess, rotate."""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from jobs.models import Job
from jobs.services import job_enqueue, job_new_id
from webhooks import conf
from webhooks.handlers import TENANT_RESOLVERS, WebhookEventInvalid, handler_for
from webhooks.models import WebhookEvent, WebhookSource, new_signing_secret

logger = logging.getLogger(__name__)

PROCESS_TASK = "webhooks.process_webhook"
PROCESS_KIND = "process_webhook"
ERROR_MAX_CHARS = 500
DONE = frozenset({WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED})


# --- sources ----------------------------------------------------------------------------------------------------------


def webhook_source_get_or_create(*, slug: str, tenant_id: int | None = None) -> tuple[WebhookSource, bool]:
    """The source with this slug, made (with a fresh signing secret) when it does not exist yet."""
    source, created = WebhookSource.objects.get_or_create(slug=slug, defaults={"tenant_id": tenant_id})
    if created:
        logger.info("Webhook source %s created (tenant %s)", slug, tenant_id)
    return source, created


@transaction.atomic
def webhook_source_rotate_secret(*, source_id: int) -> WebhookSource:
    """Give the source a new secret; the current one keeps verifying for WEBHOOKS_SECRET_GRACE_HOURS."""
    source = WebhookSource.objects.select_for_update().get(pk=source_id)
    now = timezone.now()
    source.previous_secret = source.signing_secret
    source.previous_secret_expires_at = now + timedelta(hours=conf.webhooks_secret_grace_hours())
    source.signing_secret = new_signing_secret()
    source.rotated_at = now
    source.save(update_fields=["signing_secret", "previous_secret", "previous_secret_expires_at", "rotated_at"])
    logger.info(
        "Webhook source %s: secret rotated; the old one verifies until %s",
        source.slug,
        source.previous_secret_expires_at,
    )
    return source


def system_tenant_id() -> int:
    """The tenant that owns jobs of platform-wide sources; made on first use."""
    slug = conf.webhooks_system_tenant_slug()
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"name": "System"})
    return tenant.pk


def _job_tenant_id(source: WebhookSource) -> int:
    # Job.tenant is required. A tenant's own integration runs under that tenant; platform-wide sources (billing) run
    # under the system tenant, so that no customer can see or cancel the processing of events about it.
    return source.tenant_id or system_tenant_id()


def _event_tenant_id(source: WebhookSource, payload: dict) -> int | None:
    if source.tenant_id:
        return source.tenant_id
    resolver = TENANT_RESOLVERS.get(source.slug)
    slug = resolver(payload) if resolver else None
    if slug is None:
        return None
    return Tenant.objects.filter(slug=slug).values_list("pk", flat=True).first()


# --- events -----------------------------------------------------------------------------------------------------------


def webhook_event_receive(
    *, source: WebhookSource, webhook_id: str, event_type: str, payload: dict, headers: dict
) -> tuple[WebhookEvent, bool]:
    """Store a verified delivery and enqueue its processing in one transaction; ``(event, created)``.

    A delivery whose webhook id the source already sent returns the first event and changes nothing, also when
    copies race: the unique (source, webhook_id) insert decides, inside a savepoint, and the losers read the winner.
    """
    job_tenant_id = _job_tenant_id(source)
    event_tenant_id = _event_tenant_id(source, payload)
    task_id = job_new_id()
    with transaction.atomic():
        try:
            with transaction.atomic():
                event = WebhookEvent.objects.create(
                    source=source,
                    webhook_id=webhook_id,
                    type=event_type,
                    payload=payload,
                    headers=headers,
                    tenant_id=event_tenant_id,
                    job_id=task_id,  # the Job row follows in this transaction; the foreign key is checked at commit
                )
        except IntegrityError:
            existing = WebhookEvent.objects.filter(source=source, webhook_id=webhook_id).first()
            if existing is None:
                raise
            logger.info("Webhook %s/%s received again; answering with event %s", source.slug, webhook_id, existing.pk)
            return existing, False
        job_enqueue(
            task_name=PROCESS_TASK,
            kind=PROCESS_KIND,
            tenant_id=job_tenant_id,
            kwargs={"event_id": event.pk},
            task_id=task_id,
        )
    logger.info(
        "Webhook %s/%s (%s) stored as event %s, job %s (tenant %s)",
        source.slug, webhook_id, event_type, event.pk, task_id, event_tenant_id,
    )  # fmt: skip
    return event, True


def webhook_event_process(*, event_id: int) -> WebhookEvent:
    """Apply the event's effect once: lock the row, skip it when done, run the handler, record the outcome.

    The effect and the "processed" mark commit together, so a second run (a redelivered task) finds it done.
    Raises WebhookEventInvalid when the payload cannot be acted on (marked failed); database errors that can pass
    (lock timeouts, lost connections) propagate with nothing changed, for the task to retry.
    """
    failure: WebhookEventInvalid | None = None
    with transaction.atomic():
        _set_lock_timeout()
        event = WebhookEvent.objects.select_for_update(of=("self",)).select_related("source").get(pk=event_id)
        if event.status in DONE:
            logger.info("Webhook event %s already %s; nothing to do", event.pk, event.status)
            return event
        event.attempts += 1
        handler = handler_for(source=event.source.slug, event_type=event.type)
        if handler is None:
            event.status = WebhookEvent.Status.IGNORED
            event.error = ""
        else:
            try:
                with transaction.atomic():
                    handler(event)
            except WebhookEventInvalid as exc:
                failure = exc
                event.status = WebhookEvent.Status.FAILED
                event.error = str(exc)[:ERROR_MAX_CHARS]
            else:
                event.status = WebhookEvent.Status.PROCESSED
                event.error = ""
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "attempts", "error", "processed_at"])
    log = logger.warning if failure else logger.info
    log(
        "Webhook event %s (%s/%s, tenant %s) attempt %d: %s %s",
        event.pk, event.source.slug, event.type, event.tenant_id, event.attempts, event.status, event.error,
    )  # fmt: skip
    if failure is not None:
        raise failure
    return event


def webhook_event_attempt_failed(*, event_id: int, error: str, final: bool) -> None:
    """Record a failed attempt that changed nothing else (a transient error); on the last one, mark it failed."""
    updates: dict = {"error": error[:ERROR_MAX_CHARS]}
    if final:
        updates["status"] = WebhookEvent.Status.FAILED
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status in DONE:
            return
        event.attempts += 1
        for name, value in updates.items():
            setattr(event, name, value)
        event.save(update_fields=["attempts", *updates])


def webhook_event_reprocess(*, event_id: int, user_id: int | None = None) -> Job:
    """Run an event through processing again (admin action): status back to received, and a new job."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update(of=("self",)).select_related("source").get(pk=event_id)
        event.status = WebhookEvent.Status.RECEIVED
        event.error = ""
        event.processed_at = None
        event.save(update_fields=["status", "error", "processed_at"])
        job = job_enqueue(
            task_name=PROCESS_TASK,
            kind=PROCESS_KIND,
            tenant_id=_job_tenant_id(event.source),
            user_id=user_id,
            kwargs={"event_id": event.pk},
        )
    # On commit: retry_failed --dry-run runs this in a transaction it rolls back.
    transaction.on_commit(
        lambda: logger.info("Webhook event %s reprocessing as job %s (by user %s)", event.pk, job.task_id, user_id)
    )
    return job


def webhook_events_prune(*, received_before: datetime, batch_size: int = 1000) -> int:
    """Delete settled events (processed, ignored, failed) received before the cutoff, in batches; return how many.

    Events still waiting to be processed are kept whatever their age.
    """
    deleted = 0
    settled = WebhookEvent.objects.filter(received_at__lt=received_before).exclude(status=WebhookEvent.Status.RECEIVED)
    while True:
        batch = list(settled.values_list("pk", flat=True)[:batch_size])
        if not batch:
            break
        deleted += WebhookEvent.objects.filter(pk__in=batch).delete()[0]
    if deleted:
        logger.info("Pruned %d webhook event(s) received before %s", deleted, received_before.isoformat())
    return deleted


def _set_lock_timeout() -> None:
    # Waiting on a tenant row held by someone else must end in an error the task can retry, not a stuck worker.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(conf.webhooks_lock_timeout_ms())}ms"])


def webhook_events_prune_expired(*, now: datetime, batch_size: int) -> int:
    """cleanup_old_logs' pruner: settled events older than WEBHOOK_EVENT_RETENTION_DAYS."""
    return webhook_events_prune(
        received_before=now - timedelta(days=conf.webhook_event_retention_days()), batch_size=batch_size
    )


def webhook_event_retry(*, job: Job, by_user_id: int | None) -> Job:
    """Retry hook of ``retry_failed`` and the admin: the event goes through processing again, as a new job."""
    from jobs.retry import JobNotRetryable

    event_id = job.kwargs.get("event_id")
    if event_id is None or not WebhookEvent.objects.filter(pk=event_id).exists():
        raise JobNotRetryable("Its webhook event no longer exists.")
    return webhook_event_reprocess(event_id=event_id, user_id=by_user_id)
