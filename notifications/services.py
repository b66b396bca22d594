import logging
import smtplib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import make_msgid
from time import monotonic, sleep
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldError
from django.core.mail import EmailMessage, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone
from redis.exceptions import RedisError

from jobs.ratelimit import rate_limit_take
from jobs.redis_client import redis_client
from jobs.services import job_enqueue_again, job_enqueue_with
from jobs.sql import row_lock, row_update
from notifications.conf import digest_batch_size, digest_display_timezone
from notifications.models import OutboundEmail

logger = logging.getLogger(__name__)

SEND_EMAIL_TASK = "notifications.send_email"


class TransientEmailError(Exception):
    """The mail server may accept the message later: retry."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class EmailRateLimited(Exception):
    """Sending now would exceed the email rate (all workers together, or this tenant's); try after ``wait`` s."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"Email rate limit reached; next slot in {wait:.2f}s")
        self.wait = wait


class EmailDeliveryFailed(Exception):
    """The message will not be delivered; the row says why."""


def email_request(
    *,
    tenant_id: int,
    user_id: int | None,
    to_email: str,
    subject: str,
    body: str,
    dedupe_key: str | None = None,
) -> OutboundEmail:
    """Record an email (with its Message-ID) and its Job together (jobs.services.job_enqueue_with); the send happens in
    a worker after commit."""
    email = OutboundEmail(
        tenant_id=tenant_id,
        requested_by_id=user_id,
        to_email=to_email,
        subject=subject,
        body=body,
        dedupe_key=dedupe_key,
        message_id=new_message_id(),
    )
    job_enqueue_with(email, pk_kwarg="email_id", task_name=SEND_EMAIL_TASK, kind="send_email", tenant_id=tenant_id,
                     user_id=user_id)  # fmt: skip
    return email


def new_message_id() -> str:
    """The email's Message-ID, given when it is accepted and committed with it: every attempt sends the same one, even
    a resend after a worker died between the mail server's "250" and the commit (or the receipt) that records it, so
    receivers can tell the copy."""
    return make_msgid(domain=settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost")


def email_deliver(*, email_id: int) -> OutboundEmail:
    """Send the email unless it was already sent or failed; record the outcome on the row.

    The row stays locked while the mail server is talked to, so a second delivery of the same task waits and
    then finds it sent. Raises EmailRateLimited (try later, no attempt used), TransientEmailError (retry) or
    EmailDeliveryFailed (given up after EMAIL_MAX_RETRIES retries, or refused for good).
    """
    failure: Exception | None = None
    with transaction.atomic():
        email = row_lock(OutboundEmail, email_id)  # written out: this runs for every email (jobs.sql)
        if email is None:
            raise OutboundEmail.DoesNotExist(f"No email {email_id}")
        if email.status != OutboundEmail.Status.QUEUED:
            logger.info("Email %s already %s; nothing to do", email.pk, email.status)
            return email
        if _receipt_exists(email):
            # Sent on an earlier run whose commit was lost (the database went away): record it, send nothing.
            email.status = OutboundEmail.Status.SENT
            email.sent_at = timezone.now()
            row_update(email, ["status", "sent_at"])
            logger.info("Email %s (tenant %s) was already delivered; recorded as sent", email.pk, email.tenant_id)
            return email
        _wait_for_send_slot(tenant_id=email.tenant_id)
        email.attempts += 1
        final_attempt = email.attempts > settings.EMAIL_MAX_RETRIES
        if not email.message_id:  # a row accepted before Message-IDs were given at acceptance
            email.message_id = new_message_id()
        try:
            _smtp_send(email, accepted=lambda: _receipt_write(email))
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            transient = _is_transient(exc)
            email.error = _describe(exc)[:500]
            if not transient or final_attempt:
                email.status = OutboundEmail.Status.FAILED
                failure = EmailDeliveryFailed(
                    email.error if not transient else f"Gave up after {email.attempts} attempts: {email.error}"
                )
            else:
                failure = TransientEmailError(email.error, attempts=email.attempts)
        else:
            email.status = OutboundEmail.Status.SENT
            email.sent_at = timezone.now()
            email.error = ""
        row_update(email, ["status", "attempts", "error", "message_id", "sent_at"])
    log = logger.warning if failure else logger.info
    log("Email %s (tenant %s) attempt %d: %s", email.pk, email.tenant_id, email.attempts, email.error or "sent")
    if failure is not None:
        raise failure
    return email


# The mail server took the message, but the commit that says so can still fail. A receipt in Redis, written between
# the two, lets the retry record the send instead of sending again.
RECEIPT_TTL = 7 * 24 * 3600


def _receipt_key(email: OutboundEmail) -> str:
    # Only what was committed when the email was accepted: the send's own changes may be the ones that were lost.
    return f"email:delivered:{email.pk}:{email.created_at.timestamp()}"


def _receipt_exists(email: OutboundEmail) -> bool:
    try:
        return bool(redis_client().exists(_receipt_key(email)))
    except RedisError:
        logger.warning("Email %s: delivery receipts unreadable (Redis down); sending", email.pk)
        return False


def _receipt_write(email: OutboundEmail) -> None:
    try:
        redis_client().set(_receipt_key(email), "1", ex=RECEIPT_TTL)
    except RedisError:
        logger.warning("Email %s: delivery receipt not written (Redis down)", email.pk)


def _wait_for_send_slot(*, tenant_id: int) -> None:
    """Wait (briefly) for room under both email rates; a longer wait is handed back to the queue."""
    buckets = {"email": settings.EMAIL_RATE_LIMIT, f"email:tenant:{tenant_id}": settings.EMAIL_TENANT_RATE_LIMIT}
    deadline = monotonic() + settings.EMAIL_RATE_LIMIT_MAX_WAIT
    while (wait := rate_limit_take(buckets=buckets)) > 0:
        if monotonic() + wait > deadline:
            raise EmailRateLimited(wait)
        sleep(wait)


def _smtp_send(email: OutboundEmail, *, accepted: Callable[[], None]) -> None:
    """Send the message; call ``accepted`` the moment the server has taken it, before the goodbye.

    The connection is opened here so that sending does not also close it: QUIT is one more round trip, and a worker
    killed during it would leave a delivered message without a receipt (found by the load test: one resend in 1,511).
    """
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
        message = EmailMessage(
            subject=email.subject,
            body=email.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to_email],
            headers={"Message-ID": email.message_id},
            connection=connection,
        )
        message.send(fail_silently=False)
        accepted()
    finally:
        _smtp_close(connection, email)


def _smtp_close(connection, email: OutboundEmail) -> None:
    # A failed goodbye changes nothing: the message was taken (and the receipt written), or the send's own error
    # is the one to report.
    try:
        connection.close()
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("Email %s: closing the SMTP connection failed: %s", email.pk, exc)


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


# --- Retry (jobs.retry hook for kind "send_email") -------------------------------------------------------------------


def email_cancel(*, job) -> None:
    """The cancel hook of ``send_email`` jobs (jobs.services.job_cancel): the job's email, still queued, is canceled."""
    OutboundEmail.objects.filter(job_id=job.task_id, status=OutboundEmail.Status.QUEUED).update(
        status=OutboundEmail.Status.CANCELED
    )


def email_retry(*, job, by_user_id: int | None):
    """Put the failed email of ``job`` back in the queue under a new job; return that job.

    ``send_email`` skips rows that are not queued, so re-sending the old message would do nothing: the row goes back
    to queued with its error and attempts cleared and points at the new job. Its Message-ID is kept.
    """
    from jobs.retry import JobNotRetryable

    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update().filter(job_id=job.task_id).first()
        if email is None:
            raise JobNotRetryable("Its email no longer exists.")
        if email.status == OutboundEmail.Status.SENT:
            # A failed job whose email is still queued died mid-task (time limit, crash loop): it may go again.
            raise JobNotRetryable("Its email was sent.")
        new_job = job_enqueue_again(job=job, user_id=email.requested_by_id)
        email.status = OutboundEmail.Status.QUEUED
        email.error = ""
        email.attempts = 0  # a fresh round of EMAIL_MAX_RETRIES retries
        email.job = new_job
        email.save(update_fields=["status", "error", "attempts", "job"])
    # On commit: retry_failed --dry-run runs this in a transaction it rolls back.
    transaction.on_commit(
        lambda: logger.info(
            "Email %s (tenant %s) re-queued as job %s by user %s",
            email.pk, email.tenant_id, new_job.task_id, by_user_id,
        )
    )  # fmt: skip
    return new_job


# --- Scheduled emails: renewal reminders and the weekly digest -------------------------------------------------------


def email_request_once(*, dedupe_key: str, **fields) -> OutboundEmail | None:
    """``email_request`` unless an email with this key exists already; None when it did (also if a concurrent run
    won the race: the unique key makes the loser's insert fail and its transaction roll back)."""
    if OutboundEmail.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    try:
        return email_request(dedupe_key=dedupe_key, **fields)
    except IntegrityError:
        if OutboundEmail.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        raise


def subscription_renewal_recipients(*, tenant_id: int) -> list:
    """Who hears about a tenant's renewal: its active staff users (its admins); if it has none, all its active
    users, so that a reminder always reaches someone."""
    from accounts.models import User

    active = User.objects.filter(tenant_id=tenant_id, is_active=True).order_by("pk")
    admins = list(active.filter(is_staff=True))
    return admins or list(active)


def subscription_renewals_remind(*, today: date) -> int:
    """Email the admins of every tenant whose subscription period ends ``today`` (UTC); return emails made.

    Each recipient gets one reminder per tenant and day however often this runs (key
    ``renewal:<tenant id>:<date>:user:<user id>``).
    """
    from accounts.models import Tenant

    made = 0
    for tenant in Tenant.objects.filter(subscription_current_period_end=today).order_by("pk").iterator():
        for user in subscription_renewal_recipients(tenant_id=tenant.pk):
            email = email_request_once(
                dedupe_key=f"renewal:{tenant.pk}:{today.isoformat()}:user:{user.pk}",
                tenant_id=tenant.pk,
                user_id=None,
                to_email=user.email,
                subject=f"Your {tenant.name} subscription renews today",
                body=(
                    f"Hello {user.get_short_name()},\n\n"
                    f"The subscription of {tenant.name} reaches the end of its current period today, "
                    f"{today:%A %-d %B %Y} (UTC), and renews.\n"
                    "Nothing needs doing if your billing details are up to date.\n"
                ),
            )
            made += email is not None
    logger.info("Renewal reminders for %s: %d email(s) made", today, made)
    return made


@dataclass(frozen=True)
class DigestWeek:
    label: str  # ISO week, e.g. "2026-W47"
    start: datetime  # Monday 00:00 UTC
    end: datetime  # the next Monday 00:00 UTC (exclusive)


def digest_week_for(*, at: datetime) -> DigestWeek:
    """The full ISO week before the one containing ``at`` (UTC): the week a digest sent at ``at`` summarises."""
    monday = (at.astimezone(UTC) - timedelta(days=at.astimezone(UTC).weekday())).date()
    start = datetime.combine(monday - timedelta(days=7), time.min, tzinfo=UTC)
    year, week, _ = start.isocalendar()
    return DigestWeek(label=f"{year}-W{week:02d}", start=start, end=start + timedelta(days=7))


def digest_summary(*, tenant_id: int, week: DigestWeek) -> dict:
    """What happened in a tenant during the week: jobs by kind and outcome, reports made, emails by status."""
    from jobs.models import Job
    from jobs.selectors import job_state

    jobs: dict[str, Counter] = defaultdict(Counter)
    recent = Job.objects.filter(tenant_id=tenant_id, accepted_at__gte=week.start, accepted_at__lt=week.end)
    for job in recent.select_related("result").only("kind", "canceled_at", "task_id", "result__status").iterator():
        jobs[job.kind][job_state(job=job)] += 1
    emails = Counter(
        dict(
            OutboundEmail.objects.filter(tenant_id=tenant_id, created_at__gte=week.start, created_at__lt=week.end)
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
    )
    return {"jobs": {kind: dict(outcomes) for kind, outcomes in sorted(jobs.items())}, "reports": _reports_count(
        tenant_id=tenant_id, week=week
    ), "emails": dict(emails)}  # fmt: skip


def _reports_count(*, tenant_id: int, week: DigestWeek) -> int | None:
    """Reports created in the week, when the reports app has a Report model with the usual fields; else None."""
    if not apps.is_installed("reports"):
        return None
    try:
        report_model = apps.get_model("reports", "Report")
        return report_model.objects.filter(
            tenant_id=tenant_id, created_at__gte=week.start, created_at__lt=week.end
        ).count()
    except (LookupError, FieldError):
        return None


OUTCOME_WORDS = {
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "REVOKED": "canceled",
    "PENDING": "waiting",
    "STARTED": "running",
    "PROGRESS": "running",
    "RETRY": "retrying",
}


def digest_render(*, user, tenant_name: str, summary: dict, week: DigestWeek, sent_at: datetime) -> tuple[str, str]:
    """Subject and body of one user's digest. Times are shown in DIGEST_DISPLAY_TIMEZONE (they shift with its
    daylight-saving time while the schedule stays at the same UTC time)."""
    from jobs.schedules import schedule_next_run

    zone = ZoneInfo(digest_display_timezone())
    last_day = week.end - timedelta(days=1)
    lines = [
        f"Hello {user.get_short_name()},",
        "",
        f"Here is what happened in {tenant_name} from {week.start:%A %-d %B} to {last_day:%A %-d %B %Y} "
        f"(week {week.label}).",
        "",
        "Jobs:",
    ]
    for kind, outcomes in summary["jobs"].items():
        words = Counter()
        for state, count in outcomes.items():
            words[OUTCOME_WORDS.get(state, state.lower())] += count
        lines.append(f"  {kind}: " + ", ".join(f"{count} {word}" for word, count in sorted(words.items())))
    if not summary["jobs"]:
        lines.append("  none")
    if summary["reports"] is not None:
        lines.append(f"Reports created: {summary['reports']}")
    emails = summary["emails"]
    lines.append(
        "Emails: "
        + ", ".join(f"{emails.get(status, 0)} {status}" for status in ("sent", "failed", "queued", "canceled"))
    )
    lines += ["", f"Sent {_local(sent_at, zone)}."]
    next_run = schedule_next_run(name="send-weekly-digest", after=sent_at)
    if next_run is not None:
        lines.append(f"Next digest: {_local(next_run, zone)}.")
    return f"Your weekly summary for {tenant_name} ({week.label})", "\n".join(lines) + "\n"


def _local(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    shown = f"{local:%A %-d %B %Y at %H:%M} {local.tzname()}"
    return shown if local.tzname() == zone.key else f"{shown} ({zone.key})"


def weekly_digest_send(*, at: datetime | None = None) -> int:
    """Fan out one digest email per active user for the week before ``at``; return how many emails were made.

    Users are read in batches; each email is its own transaction (one failure costs one email) with the key
    ``digest:<ISO week>:user:<id>``, so a second run in the same week makes none.
    """
    from accounts.models import User

    at = at or timezone.now()
    week = digest_week_for(at=at)
    summaries: dict[int, dict] = {}
    made = 0
    users = (
        User.objects.filter(is_active=True, tenant__isnull=False)
        .select_related("tenant")
        .order_by("pk")
        .iterator(chunk_size=digest_batch_size())
    )
    for user in users:
        if user.tenant_id not in summaries:
            summaries[user.tenant_id] = digest_summary(tenant_id=user.tenant_id, week=week)
        subject, body = digest_render(
            user=user, tenant_name=user.tenant.name, summary=summaries[user.tenant_id], week=week, sent_at=at
        )
        email = email_request_once(
            dedupe_key=f"digest:{week.label}:user:{user.pk}",
            tenant_id=user.tenant_id,
            user_id=None,
            to_email=user.email,
            subject=subject,
            body=body,
        )
        made += email is not None
    logger.info("Weekly digest %s: %d email(s) made", week.label, made)
    return made
