"""Server-rendered pages: the tenant's reports, one report's live status, downloads and shared links."""

import logging

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.selectors import job_status
from jobs.services import JobNotCancellable, job_cancel
from reports import selectors
from reports.api import ReportFileMissing, report_file_response
from reports.conf import setting
from reports.models import Report
from reports.services import (
    PDF_TYPES,
    ShareLinkExpired,
    ShareLinkInvalid,
    report_from_share_token,
    report_request,
    report_share_token,
    users_export_request,
)

logger = logging.getLogger(__name__)


class ReportRequestForm(forms.Form):
    report_type = forms.ChoiceField(choices=[(t.value, t.label) for t in PDF_TYPES], label="Report")


# A refused cancel's job state, in the page's words.
_REFUSED = {"SUCCESS": "already completed", "FAILURE": "already failed", "REVOKED": "already canceled"}


def _tenant_report_or_404(request: HttpRequest, report_id: int) -> Report:
    report = None
    if request.user.tenant_id is not None:
        report = selectors.report_get(tenant_id=request.user.tenant_id, report_id=report_id)
    if report is None:
        raise Http404("No report with this id.")  # the same for "not yours" and "does not exist"
    return report


@login_required
@require_http_methods(["GET", "POST"])
def report_list_page(request: HttpRequest) -> HttpResponse:
    tenant_id = request.user.tenant_id
    form = ReportRequestForm(request.POST if request.method == "POST" and "export" not in request.POST else None)
    if request.method == "POST" and tenant_id is not None:
        if "export" in request.POST:
            report = users_export_request(tenant_id=tenant_id, user_id=request.user.id)
            return redirect("report-page", report_id=report.pk)
        if form.is_valid():
            report = report_request(
                tenant_id=tenant_id, user_id=request.user.id, report_type=form.cleaned_data["report_type"]
            )
            return redirect("report-page", report_id=report.pk)
    reports = selectors.report_list(tenant_id=tenant_id)[:100] if tenant_id is not None else []
    rows = [(report, *selectors.report_state(report=report)) for report in reports]
    return render(
        request,
        "reports/report_list.html",
        {"form": form, "rows": rows, "has_tenant": tenant_id is not None},
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@require_GET
def report_page(request: HttpRequest, report_id: int) -> HttpResponse:
    report = _tenant_report_or_404(request, report_id)
    return render(request, "reports/report_detail.html", {"report": report, **_status_payload(request, report)})


@login_required
@require_POST
def report_cancel_page(request: HttpRequest, report_id: int) -> HttpResponse:
    """The report page's Cancel button: the API's cancel (jobs.services.job_cancel), then the page again, which shows
    what became of it (refused when it had just finished: the page then shows it completed)."""
    report = _tenant_report_or_404(request, report_id)
    if report.job is not None:
        try:
            job_cancel(job=report.job, by_user_id=request.user.id)
        except JobNotCancellable as exc:
            messages.warning(request, f"Not canceled: it is {_REFUSED.get(exc.status, exc.status)}.")
        else:
            messages.success(request, "The report was canceled.")
    return redirect("report-page", report_id=report.pk)


@login_required
@require_GET
def report_status_json(request: HttpRequest, report_id: int) -> JsonResponse:
    """What the report page polls while the report is generated."""
    report = _tenant_report_or_404(request, report_id)
    return JsonResponse(_status_payload(request, report))


def _status_payload(request: HttpRequest, report: Report) -> dict:
    status, error = selectors.report_state(report=report)
    completed = status == Report.Status.COMPLETED
    progress = job_status(job=report.job)["progress"] if report.job is not None and not completed else None
    return {
        "status": status,
        "error": error,
        "progress": progress,
        "page_count": report.page_count,
        "size_bytes": report.size_bytes,
        "download_url": reverse("report-page-download", kwargs={"report_id": report.pk}) if completed else None,
        "share_url": _share_url(request, report) if completed else None,
        "share_hours": round(setting("REPORTS_SHARE_MAX_AGE") / 3600, 1),
    }


def _share_url(request: HttpRequest, report: Report) -> str:
    path = reverse("report-shared", kwargs={"token": report_share_token(report=report)})
    return request.build_absolute_uri(path)


@login_required
@require_GET
def report_download_page(request: HttpRequest, report_id: int) -> HttpResponse:
    report = _tenant_report_or_404(request, report_id)
    status, error = selectors.report_state(report=report)
    if status != Report.Status.COMPLETED or not report.file:
        context = {"report": report, "status": status, "error": error}
        return render(request, "reports/report_not_ready.html", context, status=409)
    return _file_or_gone(request, report, as_attachment=True)


def _file_or_gone(request: HttpRequest, report: Report, *, as_attachment: bool) -> HttpResponse:
    try:
        return report_file_response(report, as_attachment=as_attachment)
    except ReportFileMissing:
        response = render(request, "reports/file_gone.html", {"report": report}, status=410)
        response["Cache-Control"] = "private, no-store"  # a 410 may be cached by default; this may change
        return response


@require_GET
def report_shared(request: HttpRequest, token: str) -> HttpResponse:
    """A report handed to someone without an account: the signed link opens the file until it expires."""
    try:
        report = report_from_share_token(token=token)
    except ShareLinkExpired:
        return render(request, "reports/shared_refused.html", {"expired": True}, status=410)
    except ShareLinkInvalid:
        return render(request, "reports/shared_refused.html", {"expired": False}, status=404)
    logger.info("Report %s (tenant %s) opened through a shared link", report.pk, report.tenant_id)
    return _file_or_gone(request, report, as_attachment=False)
