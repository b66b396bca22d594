"""Writes: ask for a report or an export, generate it (once), share it."""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from celery import states
from celery.exceptions import SoftTimeLimitExceeded
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from jobs.models import Job
from jobs.selectors import CANCELED_ERROR
from jobs.services import JobCanceled, JobNotCancellable, job_canceled, job_enqueue_again, job_enqueue_with
from reports.conf import setting
from reports.models import Report
from reports.rendering import BUILDERS, Progress, RenderedFile

logger = logging.getLogger(__name__)

GENERATE_REPORT_TASK = "reports.generate_report"
BATCH_PROCESS_USERS_TASK = "reports.batch_process_users"
PDF_TYPES = (Report.Type.USERS, Report.Type.ACTIVITY)  # what POST /api/reports/generate/ accepts
SHARE_SALT = "reports.share"
CANCELED = "Canceled while it was being generated; nothing was saved."  # what its task says when it stops

# Errors that can pass: a dropped database connection, a storage hiccup. Anything else fails the report at once.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError)


class TransientReportError(Exception):
    """Generation hit an error that may pass; the task retries."""


class ReportFailed(Exception):
    """The report will not be produced; its row says why."""


def report_request(*, tenant_id: int, user_id: int | None, report_type: str) -> Report:
    """Record a report and its Job together (jobs.services.job_enqueue_with); a worker generates it after commit."""
    if report_type not in Report.Type.values:
        raise ValueError(f"Unknown report type {report_type!r}")
    report = Report(tenant_id=tenant_id, requested_by_id=user_id, report_type=report_type)
    is_export = report_type == Report.Type.USERS_CSV
    job_enqueue_with(
        report,
        pk_kwarg="report_id",
        task_name=BATCH_PROCESS_USERS_TASK if is_export else GENERATE_REPORT_TASK,
        kind="batch_process_users" if is_export else f"report_{report_type}",
        tenant_id=tenant_id,
        user_id=user_id,
    )
    logger.info("Report %s (%s, tenant %s) requested as job %s", report.pk, report_type, tenant_id, report.job_id)
    return report


def users_export_request(*, tenant_id: int, user_id: int | None) -> Report:
    """The tenant's "export my data": a CSV of every user, stored and downloaded like a report."""
    return report_request(tenant_id=tenant_id, user_id=user_id, report_type=Report.Type.USERS_CSV)


def report_generate(
    *,
    report_id: int,
    progress: Progress | None = None,
    raise_if_canceled: Callable[[], None] | None = None,
    final_attempt: bool = True,
) -> Report:
    """Produce the report's file unless it is already completed or failed; record the outcome on the row.

    The file is built in memory and written to storage only when whole; the row points at it in the same step.
    Raises TransientReportError (retry), ReportFailed (given up, or out of time; the row says why) or JobCanceled
    (its job was canceled while it ran: ``raise_if_canceled`` raised it, asked between steps, while parts are laid
    out and once more before the file is stored; the row says so and nothing is stored).
    """
    progress = progress or (lambda current, total, status: None)
    raise_if_canceled = raise_if_canceled or (lambda: None)
    claimed = Report.objects.filter(pk=report_id, status__in=[Report.Status.PENDING, Report.Status.GENERATING]).update(
        status=Report.Status.GENERATING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    report = Report.objects.select_related("tenant", "requested_by").get(pk=report_id)
    if not claimed:
        logger.info("Report %s (tenant %s) already %s; nothing to do", report.pk, report.tenant_id, report.status)
        if report.status == Report.Status.FAILED:
            if report.job_id and job_canceled(task_id=report.job_id):
                raise JobCanceled(f"Report {report.pk} was canceled.")  # by report_cancel, as this run began
            raise ReportFailed(report.error)
        return report

    started = time.monotonic()
    stored_name = None
    try:
        rendered = BUILDERS[report.report_type](report=report, progress=progress, raise_if_canceled=raise_if_canceled)
        if time.monotonic() - started > setting("REPORTS_SOFT_TIME_LIMIT"):
            # Celery's soft-limit signal can land inside a C callback of the renderer and be lost there; the
            # limit holds anyway.
            raise SoftTimeLimitExceeded()
        raise_if_canceled()
        key = _storage_key(report, rendered)
        if default_storage.exists(key):
            default_storage.delete(key)  # left by an attempt that died between storing the file and recording it
        stored_name = default_storage.save(key, ContentFile(rendered.content))
        _mark_completed(report, rendered, stored_name)
    except JobCanceled:
        _discard(stored_name)
        _mark_failed(report, CANCELED)
        raise
    except SoftTimeLimitExceeded:
        _discard(stored_name)
        limit = setting("REPORTS_SOFT_TIME_LIMIT")
        _mark_failed(report, f"Stopped after the {limit:g} s time limit; nothing was saved. Try a smaller report.")
        raise ReportFailed(report.error) from None
    except TRANSIENT_ERRORS as exc:
        _discard(stored_name)
        reason = f"{type(exc).__name__}: {exc}".strip()[:400]
        if final_attempt:
            _mark_failed(report, f"Gave up after {report.attempts} attempts: {reason}")
            raise ReportFailed(report.error) from exc
        _note_retry(report, reason)
        raise TransientReportError(reason) from exc
    except Exception as exc:  # noqa: BLE001 - any other error fails this report, with the reason on its row
        _discard(stored_name)
        logger.exception("Report %s (tenant %s) failed", report.pk, report.tenant_id)
        _mark_failed(report, f"{type(exc).__name__}: {exc}")
        raise ReportFailed(report.error) from exc
    logger.info(
        "Report %s (%s, tenant %s) completed: %s pages, %d bytes, %.2f s",
        report.pk, report.report_type, report.tenant_id, report.page_count, report.size_bytes,
        time.monotonic() - started,
    )  # fmt: skip
    return report


def _storage_key(report: Report, rendered: RenderedFile) -> str:
    # Chosen here, never from a request: the tenant, the report and a part nobody can guess without the secret key.
    # The same on every attempt, so a retry after a crash replaces a stray file instead of adding a second one.
    unguessable = salted_hmac("reports.storage-key", f"{report.pk}:{report.created_at.isoformat()}").hexdigest()[:16]
    return f"reports/tenant-{report.tenant_id}/report-{report.pk}-{unguessable}.{rendered.extension}"


def _mark_completed(report: Report, rendered: RenderedFile, stored_name: str) -> None:
    now = timezone.now()
    fields = {
        "status": Report.Status.COMPLETED,
        "file": stored_name,
        "content_type": rendered.content_type,
        "page_count": rendered.page_count,
        "size_bytes": len(rendered.content),
        "render_seconds": round(rendered.render_seconds, 3),
        "summary": rendered.summary,
        "completed_at": now,
        "error": "",
    }
    with transaction.atomic():
        # The job's row, locked as job_cancel locks it: a cancel either came first (the report is not completed) or
        # finds the report completed and is refused (report_cancel).
        if report.job_id and job_canceled(task_id=report.job_id, lock=True):
            raise JobCanceled(f"Report {report.pk} was canceled.")
        updated = Report.objects.filter(pk=report.pk, status=Report.Status.GENERATING).update(**fields)
    if not updated:
        # Another delivery of the same task finished first; keep its file, drop ours.
        _discard(stored_name)
        report.refresh_from_db()
        return
    for name, value in fields.items():
        setattr(report, name, value)


def _mark_failed(report: Report, error: str) -> None:
    report.status = Report.Status.FAILED
    report.error = error[:500]
    report.completed_at = timezone.now()
    try:
        Report.objects.filter(pk=report.pk).exclude(status=Report.Status.COMPLETED).update(
            status=report.status, error=report.error, completed_at=report.completed_at, file=""
        )
    except DatabaseError:
        logger.exception("Could not record the failure of report %s", report.pk)
    logger.warning("Report %s (tenant %s) failed: %s", report.pk, report.tenant_id, report.error)


def _note_retry(report: Report, reason: str) -> None:
    report.error = f"Attempt {report.attempts} failed, retrying: {reason}"[:500]
    try:
        Report.objects.filter(pk=report.pk).update(error=report.error)
    except DatabaseError:
        logger.warning("Could not note the retry of report %s (the database is the problem)", report.pk)
    logger.warning("Report %s (tenant %s): %s", report.pk, report.tenant_id, report.error)


def _discard(stored_name: str | None) -> None:
    """Delete a file this run stored, unless a report row points at it (a commit just before a time limit)."""
    if stored_name and not Report.objects.filter(file=stored_name).exists():
        try:
            default_storage.delete(stored_name)
        except OSError:
            logger.exception("Could not delete the partial file %s", stored_name)


def report_download_path(report: Report) -> str:
    return reverse("report-download", kwargs={"report_id": report.pk})


def report_filename(report: Report) -> str:
    day = (report.completed_at or report.created_at).date().isoformat()
    extension = "pdf" if report.is_pdf else "csv"
    return f"{report.tenant.slug}-{report.report_type.replace('_', '-')}-{day}-{report.pk}.{extension}"


def report_share_token(*, report: Report) -> str:
    """A token that opens this report's file without an account until it expires (REPORTS_SHARE_MAX_AGE)."""
    return signing.TimestampSigner(salt=SHARE_SALT).sign(str(report.pk))


class ShareLinkInvalid(Exception):
    pass


class ShareLinkExpired(Exception):
    pass


def report_from_share_token(*, token: str) -> Report:
    """The completed report a share token points at; raises ShareLinkInvalid or ShareLinkExpired."""
    signer = signing.TimestampSigner(salt=SHARE_SALT)
    try:
        report_id = signer.unsign(token, max_age=setting("REPORTS_SHARE_MAX_AGE"))
    except signing.SignatureExpired as exc:
        raise ShareLinkExpired from exc
    except signing.BadSignature as exc:
        raise ShareLinkInvalid from exc
    report = Report.objects.select_related("tenant").filter(pk=report_id, status=Report.Status.COMPLETED).first()
    if report is None or not report.file:
        raise ShareLinkInvalid
    return report


def report_cancel(*, job: Job) -> None:
    """Cancel hook (jobs.services.DEFAULT_CANCEL_HOOKS), in the cancel's transaction: the report is marked failed,
    "Canceled." (a running one's task, when it stops, says more), so the row stays true once old jobs are pruned. A
    report whose file is already recorded is done, even if its task has not yet stored SUCCESS: the cancel is
    refused."""
    reports = Report.objects.filter(job_id=job.task_id)
    if reports.filter(status=Report.Status.COMPLETED).exists():
        raise JobNotCancellable(states.SUCCESS)
    reports.filter(status__in=[Report.Status.PENDING, Report.Status.GENERATING]).update(
        status=Report.Status.FAILED, error=CANCELED_ERROR, completed_at=timezone.now()
    )


def report_retry(*, job, by_user_id: int | None):
    """Retry hook of ``retry_failed`` and the admin: a failed report goes back to pending under a new job."""
    from jobs.retry import JobNotRetryable

    with transaction.atomic():
        report = Report.objects.select_for_update().filter(job_id=job.task_id).first()
        if report is None:
            raise JobNotRetryable("Its report no longer exists.")
        if report.status == Report.Status.COMPLETED:
            # A failed job whose report is still generating died mid-task (hard time limit, crash loop): retry it.
            raise JobNotRetryable("Its report is completed.")
        new_job = job_enqueue_again(job=job, user_id=report.requested_by_id)
        report.status = Report.Status.PENDING
        report.error = ""
        report.attempts = 0
        report.job = new_job
        report.save(update_fields=["status", "error", "attempts", "job"])
    # On commit: retry_failed --dry-run runs this in a transaction it rolls back.
    transaction.on_commit(
        lambda: logger.info(
            "Report %s (tenant %s) re-queued as job %s by user %s",
            report.pk, report.tenant_id, new_job.task_id, by_user_id,
        )
    )  # fmt: skip
    return new_job


def reports_prune(*, now, batch_size: int) -> int:
    """cleanup_old_logs' pruner: delete finished reports older than REPORTS_RETENTION_DAYS, row first, then file.

    Pending and generating reports stay whatever their age.
    """
    cutoff = now - timedelta(days=setting("REPORTS_RETENTION_DAYS"))
    finished = Report.objects.filter(
        created_at__lt=cutoff, status__in=[Report.Status.COMPLETED, Report.Status.FAILED]
    ).order_by("pk")
    deleted = 0
    while batch := list(finished.only("pk", "file")[:batch_size]):
        deleted += finished.filter(pk__in=[report.pk for report in batch]).delete()[0]
        for report in batch:
            _discard(report.file.name or None)  # a file whose row is gone; one left behind would only waste space
    return deleted
