from datetime import UTC, date, datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from jobs.services import retry_countdown
from jobs.tasks import JobTask
from notifications.services import (
    EmailRateLimited,
    TransientEmailError,
    digest_week_for,
    email_deliver,
    subscription_renewals_remind,
    weekly_digest_send,
)


# max_retries=None: the email row counts SMTP attempts and gives up by itself, and waiting for a rate-limit slot must
# never fail an email (a per-call max_retries=None would mean Celery's default of 3, not "no limit").
@shared_task(
    bind=True, base=JobTask, name="notifications.send_email", time_limit=120, soft_time_limit=90, max_retries=None
)
def send_email(self, email_id: int) -> dict:
    try:
        email = email_deliver(email_id=email_id)
    except EmailRateLimited as exc:
        raise self.retry(countdown=exc.wait) from exc
    except TransientEmailError as exc:
        countdown = retry_countdown(retries=exc.attempts - 1, base=settings.EMAIL_RETRY_BASE_DELAY, cap=600)
        raise self.retry(exc=exc, countdown=countdown) from exc
    return {"email_id": email.pk, "to_email": email.to_email, "status": email.status, "attempts": email.attempts}


# --- Periodic system tasks (beat; no tenant, no Job row of their own — the emails they make get Jobs) -----------------


@shared_task(name="notifications.check_subscription_renewals", time_limit=10 * 60, soft_time_limit=9 * 60)
def check_subscription_renewals(day: str | None = None) -> dict:
    """Beat's "check-subscription-renewals": remind tenants whose period ends today (UTC) or on ``day``."""
    today = date.fromisoformat(day) if day else timezone.now().date()
    return {"day": today.isoformat(), "emails": subscription_renewals_remind(today=today)}


@shared_task(name="notifications.send_weekly_digest", time_limit=60 * 60, soft_time_limit=55 * 60)
def send_weekly_digest(at: str | None = None) -> dict:
    """Beat's "send-weekly-digest": one email per active user about last week (the week before ``at``, ISO)."""
    moment = datetime.fromisoformat(at) if at else timezone.now()
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return {"week": digest_week_for(at=moment).label, "emails": weekly_digest_send(at=moment)}
