"""Entry points: take a report id, call the service, retry what can pass. Both run on the "reports" queue.

Rendering is memory-hungry; the Procfile's worker recycles its children (--max-tasks-per-child,
--max-memory-per-child) so a large report's memory goes back to the system.
"""

import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from jobs.services import retry_countdown
from jobs.tasks import JobTask
from reports.conf import setting
from reports.models import Report
from reports.services import (
    BATCH_PROCESS_USERS_TASK,
    GENERATE_REPORT_TASK,
    TransientReportError,
    report_download_path,
    report_generate,
)

logger = logging.getLogger(__name__)

TIME_LIMITS = {"soft_time_limit": setting("REPORTS_SOFT_TIME_LIMIT"), "time_limit": setting("REPORTS_TIME_LIMIT")}


@worker_process_init.connect
def _render_server_start(**kwargs) -> None:
    """Each pool process starts the server its report render processes fork from (reports.pdf) when it starts, not
    on its first long report, which would wait for it."""
    if setting("REPORTS_RENDER_PROCESSES") > 1:
        from reports import pdf

        pdf.warm_up()


@worker_process_shutdown.connect
def _render_server_stop(**kwargs) -> None:
    from reports import pdf

    pdf.shut_down()


def _run(task: JobTask, report_id: int) -> Report:
    max_retries = setting("REPORTS_MAX_RETRIES")
    try:
        return report_generate(
            report_id=report_id,
            progress=lambda current, total, status: task.progress(current=current, total=total, status=status),
            raise_if_canceled=task.raise_if_canceled,
            final_attempt=task.request.retries >= max_retries,
        )
    except TransientReportError as exc:
        countdown = retry_countdown(retries=task.request.retries, base=setting("REPORTS_RETRY_BASE_DELAY"), cap=10 * 60)
        logger.warning("Report %s: retry %d in %.1f s", report_id, task.request.retries + 1, countdown)
        raise task.retry(exc=exc, countdown=countdown, max_retries=max_retries) from exc


def _done_progress(report: Report) -> dict:
    total = report.summary.get("progress_total") or 1
    return {"current": total, "total": total, "status": "done"}


@shared_task(bind=True, base=JobTask, name=GENERATE_REPORT_TASK, **TIME_LIMITS)
def generate_report(self, report_id: int) -> dict:
    report = _run(self, report_id)
    return {
        "report_id": report.pk,
        "report_type": report.report_type,
        "status": report.status,
        "page_count": report.page_count,
        "size_bytes": report.size_bytes,
        "download_url": report_download_path(report),
        "progress": _done_progress(report),
    }


@shared_task(bind=True, base=JobTask, name=BATCH_PROCESS_USERS_TASK, **TIME_LIMITS)
def batch_process_users(self, report_id: int) -> dict:
    """Walk every user of the tenant into a CSV; a user that fails is recorded and the walk goes on."""
    report = _run(self, report_id)
    summary = report.summary
    return {
        "report_id": report.pk,
        "status": report.status,
        "total": summary.get("total", 0),
        "processed": summary.get("processed", 0),
        "failed": summary.get("failed", 0),
        "errors": summary.get("errors", [])[:20],
        "download_url": report_download_path(report),
        "progress": _done_progress(report),
    }
