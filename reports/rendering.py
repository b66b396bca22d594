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

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.utils import timezone

from reports import charts, selectors
from reports.conf import setting
from reports.models import Report

logger = logging.getLogger(__name__)

# (current, total, status) — how far the work is, in units of the report's own choosing
Progress = Callable[[int, int, str], None]

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


_font_config = None


def _weasyprint_font_config():
    """One FontConfiguration per process: fontconfig's scan of the system fonts is paid once, not per report."""
    global _font_config
    if _font_config is None:
        from weasyprint.text.fonts import FontConfiguration

        _font_config = FontConfiguration()
    return _font_config


def pdf_render(*, template: str, context: dict, progress: Callable[[str], None]) -> tuple[bytes, int, float]:
    """Lay out the template and write the PDF; return its bytes, its page count and the seconds it took."""
    from weasyprint import HTML  # heavy import, needed only in workers

    html = render_to_string(template, context)
    started = time.monotonic()
    progress("laying out pages")
    with _fewer_gc_passes():
        document = HTML(string=html, base_url=None).render(font_config=_weasyprint_font_config())
        pages = len(document.pages)
        progress(f"writing PDF ({pages} pages)")
        # Fonts are subset to the glyphs used (the default, and the fastest write: full fonts and uncompressed PDFs
        # were measured slower); no images, so no image options to tune.
        content = document.write_pdf()
    return content, pages, time.monotonic() - started


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


def users_pdf(*, report: Report, progress: Progress) -> RenderedFile:
    total_users = selectors.users_count(tenant_id=report.tenant_id)
    total = total_users + 2  # every user gathered, then layout, then writing
    progress(0, total, "gathering users")
    users = []
    for row in selectors.users_rows(tenant_id=report.tenant_id):
        users.append(row)
        if len(users) % selectors.USER_CHUNK == 0:
            progress(len(users), total, "gathering users")
    total_users = len(users)  # users added meanwhile are in, and counted
    total = total_users + 2
    progress(total_users, total, "gathering users")
    context = _base_context(report) | {
        "users": users,
        "total_users": total_users,
        "active_users": sum(1 for u in users if u["is_active"]),
        "staff_users": sum(1 for u in users if u["is_staff"]),
        "never_logged_in": sum(1 for u in users if u["last_login"] is None),
    }
    stage = iter(range(total_users, total + 1))
    next(stage)
    content, pages, seconds = pdf_render(
        template="reports/pdf/users.html", context=context, progress=lambda s: progress(next(stage), total, s)
    )
    return RenderedFile(content, "pdf", PDF, pages, seconds, {"users": total_users, "progress_total": total})


def activity_pdf(*, report: Report, progress: Progress) -> RenderedFile:
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
    content, pages, seconds = pdf_render(
        template="reports/pdf/activity.html", context=context, progress=lambda s: progress(next(done), total, s)
    )
    return RenderedFile(content, "pdf", PDF, pages, seconds, {"days": len(days), "progress_total": total} | totals)


CSV_HEADER = ["id", "email", "first_name", "last_name", "is_active", "is_staff", "date_joined", "last_login"]
CSV_ERRORS_KEPT = 100  # per-user errors kept on the row; the count is always complete


def users_csv(*, report: Report, progress: Progress) -> RenderedFile:
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
