from celery import shared_task
from django.conf import settings

from jobs.services import retry_countdown
from jobs.tasks import JobTask
from notifications.services import TransientEmailError, email_deliver


@shared_task(bind=True, base=JobTask, name="notifications.send_email", time_limit=120, soft_time_limit=90)
def send_email(self, email_id: int) -> dict:
    max_retries = settings.EMAIL_MAX_RETRIES
    try:
        email = email_deliver(email_id=email_id, final_attempt=self.request.retries >= max_retries)
    except TransientEmailError as exc:
        countdown = retry_countdown(retries=self.request.retries, base=settings.EMAIL_RETRY_BASE_DELAY, cap=600)
        raise self.retry(exc=exc, countdown=countdown, max_retries=max_retries) from exc
    return {"email_id": email.pk, "to_email": email.to_email, "status": email.status, "attempts": email.attempts}
