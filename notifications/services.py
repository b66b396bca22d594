import logging
import smtplib
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from jobs.services import job_enqueue, job_new_id
from notifications.models import OutboundEmail

logger = logging.getLogger(__name__)

SEND_EMAIL_TASK = "notifications.send_email"


class TransientEmailError(Exception):
    """The mail server may accept the message later: retry."""


class EmailDeliveryFailed(Exception):
    """The message will not be delivered; the row says why."""


@transaction.atomic
def email_request(
    *,
    tenant_id: int,
    user_id: int | None,
    to_email: str,
    subject: str,
    body: str,
    dedupe_key: str | None = None,
) -> OutboundEmail:
    """Record an email and its Job in one transaction; the send happens in a worker after commit."""
    task_id = job_new_id()
    email = OutboundEmail.objects.create(
        tenant_id=tenant_id,
        requested_by_id=user_id,
        job_id=task_id,  # the Job row follows in this transaction; the foreign key is checked at commit
        to_email=to_email,
        subject=subject,
        body=body,
        dedupe_key=dedupe_key,
    )
    job_enqueue(
        task_name=SEND_EMAIL_TASK,
        kind="send_email",
        tenant_id=tenant_id,
        user_id=user_id,
        kwargs={"email_id": email.pk},
        task_id=task_id,
    )
    return email


def email_deliver(*, email_id: int, final_attempt: bool) -> OutboundEmail:
    """Send the email unless it was already sent or failed; record the outcome on the row.

    The row stays locked while the mail server is talked to, so a second delivery of the same task waits and
    then finds it sent. Raises TransientEmailError (retry) or EmailDeliveryFailed (give up).
    """
    failure: Exception | None = None
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update().get(pk=email_id)
        if email.status != OutboundEmail.Status.QUEUED:
            logger.info("Email %s already %s; nothing to do", email.pk, email.status)
            return email
        email.attempts += 1
        if not email.message_id:
            email.message_id = make_msgid(domain=settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost")
        try:
            _smtp_send(email)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            transient = _is_transient(exc)
            email.error = _describe(exc)[:500]
            if not transient or final_attempt:
                email.status = OutboundEmail.Status.FAILED
                failure = EmailDeliveryFailed(
                    email.error if not transient else f"Gave up after {email.attempts} attempts: {email.error}"
                )
            else:
                failure = TransientEmailError(email.error)
        else:
            email.status = OutboundEmail.Status.SENT
            email.sent_at = timezone.now()
            email.error = ""
        email.save(update_fields=["status", "attempts", "error", "message_id", "sent_at"])
    log = logger.warning if failure else logger.info
    log("Email %s (tenant %s) attempt %d: %s", email.pk, email.tenant_id, email.attempts, email.error or "sent")
    if failure is not None:
        raise failure
    return email


def _smtp_send(email: OutboundEmail) -> None:
    message = EmailMessage(
        subject=email.subject,
        body=email.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        headers={"Message-ID": email.message_id},
    )
    message.send(fail_silently=False)


def _is_transient(exc: Exception) -> bool:
    """4xx replies, dropped connections and network errors pass; 5xx replies and bad messages do not."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPException | ValueError):
        return False
    return isinstance(exc, OSError)


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"SMTP {exc.smtp_code}: {text}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return f"SMTP {code}: {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    return f"{type(exc).__name__}: {exc}"
