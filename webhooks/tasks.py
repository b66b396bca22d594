import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from jobs.services import retry_countdown
from jobs.tasks import JobTask
from webhooks import conf
from webhooks.external import FetchFailed, FetchTransientError, external_data_fetch
from webhooks.handlers import WebhookEventInvalid
from webhooks.services import webhook_event_attempt_failed, webhook_event_process

logger = logging.getLogger(__name__)

# Database errors that pass: lock timeouts, a restarted server, a dropped connection.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


class WebhookProcessingFailed(Exception):
    """Processing kept failing on transient errors until the retries ran out."""


# ``throws``: failures that are the answer, not a fault (a 404, an invalid payload); Celery logs them in a line at
# INFO instead of a traceback at ERROR. The job still ends FAILURE with its short error.
@shared_task(
    bind=True, base=JobTask, name="webhooks.process_webhook", time_limit=60, soft_time_limit=45,
    throws=(WebhookEventInvalid,),
)  # fmt: skip
def process_webhook(self, event_id: int) -> dict:
    max_retries = conf.webhooks_max_retries()
    try:
        event = webhook_event_process(event_id=event_id)
    except TRANSIENT_DB_ERRORS as exc:
        error = _describe(exc)
        final = self.request.retries >= max_retries
        logger.warning(
            "Webhook event %s, task %s: transient error (%s); final=%s", event_id, self.request.id, error, final
        )
        try:
            webhook_event_attempt_failed(event_id=event_id, error=error, final=final)
        except DatabaseError:
            # The database may still be away; the retry (or the Job's FAILURE) carries the error meanwhile.
            logger.exception("Could not record the failed attempt of webhook event %s", event_id)
        if final:
            raise WebhookProcessingFailed(f"Gave up after {max_retries + 1} attempts: {error}") from exc
        countdown = retry_countdown(retries=self.request.retries, base=conf.webhooks_retry_base_delay(), cap=600)
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries) from exc
    return {"event_id": event.pk, "webhook_id": event.webhook_id, "type": event.type, "status": event.status}


@shared_task(
    bind=True, base=JobTask, name="webhooks.fetch_external_data", time_limit=120, soft_time_limit=90,
    throws=(FetchFailed,),
)  # fmt: skip
def fetch_external_data(self, url: str) -> dict:
    max_attempts = conf.fetch_max_attempts()
    attempt = self.request.retries + 1
    try:
        return external_data_fetch(url=url, attempt=attempt)
    except FetchTransientError as exc:
        if attempt >= max_attempts:
            logger.warning("Fetch %s (task %s) gave up after %d attempts: %s", url, self.request.id, attempt, exc)
            raise FetchFailed(f"Gave up after {attempt} attempts: {exc}") from exc
        countdown = retry_countdown(
            retries=self.request.retries, base=conf.fetch_retry_base_delay(), cap=conf.fetch_retry_max_delay()
        )
        logger.info(
            "Fetch %s (task %s) attempt %d failed (%s); retrying in %.1fs",
            url,
            self.request.id,
            attempt,
            exc,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_attempts - 1) from exc


def _describe(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
