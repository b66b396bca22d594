"""Turn a report's data into file bytes: PDFs with WeasyPrint from Django templates, the users export as CSV.

Everything here works in memory and returns bytes; nothing touches storage, so a failure or a time limit in the
middle leaves no half-written file anywhere.
"""

import csv
import gc
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError
from django.template.loader import render_to_string
from django.utils import timezone

from jobs.services import JobCanceled
from reports import charts, paging, pdf, selectors
from reports.conf import setting
from reports.models import Report

logger = logging.getLogger(__name__)

# (current, total, status) — how far the work is, in units of the report's own choosing
Progress = Callable[[int, int, str], None]
# Asked between steps and while parts are laid out: raises JobCanceled when the report's job was canceled meanwhile.
CancelCheck = Callable[[], None]

PDF = "application/pdf"
CSV = "text/csv"


@dataclass
class RenderedFile:
    content: bytes
    extension: str
    content_type: str
    page_count: int | None = None
    render_seconds: float = 0.0
    summary: dict = field(default_factory=dict)


def pdf_render(
    *, template: str, context: dict, progress: Callable[[str], None], raise_if_canceled: CancelCheck
) -> tuple[bytes, int, float]:
    """Lay out the template and write the PDF in this process; return its bytes, its page count and the seconds it
    took."""
    html = render_to_string(template, context)
    started = time.monotonic()
    progress("laying out pages")

    def laid_out(count: int) -> None:
        raise_if_canceled()  # not asked during the layout itself, which is WeasyPrint's
        progress(f"writing PDF ({count} pages)")

    with _fewer_gc_passes():
        content, pages = pdf.render(html, laid_out=laid_out)
    return content, pages, time.monotonic() - started


def pdf_render_pages(
    *, template: str, context: dict, pages: list[list], progress: Callable[[str], None], raise_if_canceled: CancelCheck
) -> tuple[bytes, int, float, int]:
    """Render a document whose rows were planned into pages (``pages``: the rows each page holds, the template's
    ``pages``), in runs of pages laid out at once in several processes (``reports.pdf``); return its bytes, page
    count, seconds and how many processes it took.

    A short document, or ``REPORTS_RENDER_PROCESSES=1``, is laid out whole here, its rows as one table that breaks
    where WeasyPrint breaks it. So is one whose parts did not come out with the pages planned (the plan misjudged a
    row), or whose parts could not be rendered: the whole document is always right, only slower.
    """
    plan = paging.parts(
        len(pages), processes=setting("REPORTS_RENDER_PROCESSES"), min_pages=setting("REPORTS_PAGES_PER_PROCESS")
    )
    spent = 0.0
    if len(plan) > 1:
        htmls = [render_to_string(template, context | {"pages": pages[p.start : p.end], "part": p}) for p in plan]
        started = time.monotonic()
        progress(f"laying out {len(pages)} pages in {len(plan)} processes")
        try:
            results = pdf.render_parts(htmls, waiting=raise_if_canceled)
            counts = [count for _, count in results]
            if counts == [p.end - p.start for p in plan]:
                progress(f"joining {len(plan)} parts ({len(pages)} pages)")
                content = pdf.join([content for content, _ in results])
                return content, len(pages), time.monotonic() - started, len(plan)
            logger.warning(
                "Parts of %s came out with %s pages where %s were planned; rendering it whole",
                template, counts, [p.end - p.start for p in plan],
            )  # fmt: skip
        except (SoftTimeLimitExceeded, JobCanceled, DatabaseError):
            raise  # stop now (a database error in the cancel check: retry later), not render it whole
        except Exception as exc:  # noqa: BLE001 - a process that died, a fork refused, a part pypdf cannot read
            logger.warning("Rendering %s in parts failed (%r); rendering it whole", template, exc)
        spent = time.monotonic() - started
    rows = [row for page in pages for row in page]
    content, page_count, seconds = pdf_render(
        template=template, context=context | {"pages": [rows]}, progress=progress, raise_if_canceled=raise_if_canceled
    )
    return content, page_count, spent + seconds, 1


_gc_lock = threading.Lock()
_gc_renders = 0  # renders in progress in this process (a threads pool may run several)
_gc_thresholds: tuple[int, ...] = ()


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Layout makes hundreds of thousands of small objects, and with Python's default thresholds the cycle collector
    runs every 700 allocations and keeps walking the growing box tree: 20-40 % of a large report's time (bench/).
    Boxes are freed by reference counting anyway; the collector still runs, a hundred times less often. The first
    render in the process raises the thresholds, the last one to finish puts them back."""
    global _gc_renders, _gc_thresholds
    with _gc_lock:
        if _gc_renders == 0:
            _gc_thresholds = gc.get_threshold()
            gc.set_threshold(100_000, 50, 100)
        _gc_renders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_renders -= 1
            if _gc_renders == 0:
                gc.set_threshold(*_gc_thresholds)


def _base_context(report: Report) -> dict:
    return {
        "report": report,
        "tenant": report.tenant,
        "requested_by": report.requested_by,
        "generated_at": timezone.now(),
    }


def users_pdf(*, report: Report, progress: Progress, raise_if_canceled: CancelCheck) -> RenderedFile:
    total_users = selectors.users_count(tenant_id=report.tenant_id)
    total = total_users + 2  # every user gathered, then layout, then writing
    progress(0, total, "gathering users")
    users = []
    for row in selectors.users_rows(tenant_id=report.tenant_id):
        users.append(row)
        if len(users) % selectors.USER_CHUNK == 0:
            raise_if_canceled()
            progress(len(users), total, "gathering users")
    total_users = len(users)  # users added meanwhile are in, and counted
    total = total_users + 2
    progress(total_users, total, "gathering users")
    for number, user in enumerate(users, start=1):
        user["n"] = number
    context = _base_context(report) | {
        "total_users": total_users,
        "active_users": sum(1 for u in users if u["is_active"]),
        "staff_users": sum(1 for u in users if u["is_staff"]),
        "never_logged_in": sum(1 for u in users if u["last_login"] is None),
    }
    pages = None
    if setting("REPORTS_RENDER_PROCESSES") > 1:  # the plan serves only a report laid out in parts
        pages = paging.user_pages(users, tenant_name=report.tenant.name, meta=_masthead_meta(context))
    stage = iter(range(total_users, total + 1))
    next(stage)
    content, page_count, seconds, processes = pdf_render_pages(
        template="reports/pdf/users.html",
        context=context,
        pages=pages or [users],
        progress=lambda s: progress(next(stage, total), total, s),
        raise_if_canceled=raise_if_canceled,
    )
    summary = {"users": total_users, "progress_total": total, "render_processes": processes}
    return RenderedFile(content, "pdf", PDF, page_count, seconds, summary)


def _masthead_meta(context: dict) -> str:
    """The masthead's line under the title (templates/reports/pdf/_base.html), for planning the first page."""
    requested_by = context["requested_by"]
    by = f" · requested by {requested_by.email}" if requested_by else ""
    return f"Generated {context['generated_at']:%d %B %Y, %H:%M} UTC{by} · report #{context['report'].pk}"


def activity_pdf(*, report: Report, progress: Progress, raise_if_canceled: CancelCheck) -> RenderedFile:
    total = 5  # three queries, then layout, then writing
    done = iter(range(1, total + 1))
    progress(0, total, "gathering jobs")
    activity = selectors.activity_gather(
        tenant_id=report.tenant_id,
        days=setting("REPORTS_ACTIVITY_DAYS"),
        step=lambda name: progress(next(done), total, f"gathered {name}"),
    )
    days = activity.days
    totals = {
        "jobs": sum(d.jobs_total for d in days),
        "jobs_succeeded": sum(d.jobs_succeeded for d in days),
        "jobs_failed": sum(d.jobs_failed for d in days),
        "jobs_other": sum(d.jobs_other for d in days),
        "emails_sent": sum(d.emails_sent for d in days),
        "emails_failed": sum(d.emails_failed for d in days),
        "webhooks": sum(d.webhooks for d in days),
    }
    finished = totals["jobs_succeeded"] + totals["jobs_failed"]
    totals["success_rate"] = f"{100 * totals['jobs_succeeded'] / finished:.1f} %" if finished else "–"
    context = _base_context(report) | {
        "activity": activity,
        "days": list(reversed(days)),  # newest first in the table
        "totals": totals,
        "jobs_chart": charts.jobs_chart(days),
        "messages_chart": charts.messages_chart(days),
    }
    raise_if_canceled()
    content, pages, seconds = pdf_render(
        template="reports/pdf/activity.html",
        context=context,
        progress=lambda s: progress(next(done), total, s),
        raise_if_canceled=raise_if_canceled,
    )
    return RenderedFile(content, "pdf", PDF, pages, seconds, {"days": len(days), "progress_total": total} | totals)


CSV_HEADER = ["id", "email", "first_name", "last_name", "is_active", "is_staff", "date_joined", "last_login"]
CSV_ERRORS_KEPT = 100  # per-user errors kept on the row; the count is always complete


def users_csv(*, report: Report, progress: Progress, raise_if_canceled: CancelCheck) -> RenderedFile:
    """The tenant's "export my data": every user, one CSV row each; a user that cannot be exported is recorded
    with the reason and the walk goes on."""
    total = selectors.users_count(tenant_id=report.tenant_id)
    step = max(1, total // 200)  # per-user progress, written at most ~200 times however many users there are
    started = time.monotonic()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    walked = exported = 0
    errors: list[dict] = []
    progress(0, total, "exporting users")
    for user in selectors.users_rows(tenant_id=report.tenant_id):
        walked += 1
        try:
            writer.writerow(_user_csv_row(user))
            exported += 1
        except ValidationError as exc:
            if len(errors) < CSV_ERRORS_KEPT:
                errors.append({"user_id": user["id"], "email": user["email"], "error": " ".join(exc.messages)})
            logger.warning("Export %s (tenant %s): user %s skipped: %s", report.pk, report.tenant_id, user["id"], exc)
        if walked % step == 0:
            raise_if_canceled()
            progress(min(walked, total), max(total, walked), f"exported {exported} of {total} users")
    total = max(total, walked)
    failed = walked - exported
    summary = {"total": walked, "processed": exported, "failed": failed, "errors": errors, "progress_total": total}
    return RenderedFile(buffer.getvalue().encode("utf-8"), "csv", CSV, None, time.monotonic() - started, summary)


def _user_csv_row(user: dict) -> list[str]:
    validate_email(user["email"])  # legacy rows may hold an address that no mail system would accept
    return [
        str(user["id"]),
        _csv_safe(user["email"]),
        _csv_safe(user["first_name"]),
        _csv_safe(user["last_name"]),
        "yes" if user["is_active"] else "no",
        "yes" if user["is_staff"] else "no",
        user["date_joined"].isoformat(),
        user["last_login"].isoformat() if user["last_login"] else "",
    ]


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet; a leading quote keeps it text.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


BUILDERS: dict[str, Callable[..., RenderedFile]] = {
    Report.Type.USERS: users_pdf,
    Report.Type.ACTIVITY: activity_pdf,
    Report.Type.USERS_CSV: users_csv,
}
