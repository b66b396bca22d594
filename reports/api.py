import logging

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.idempotency import idempotent
from jobs.openapi import (
    AUTHENTICATED,
    BODY,
    DETAIL,
    IDEMPOTENCY_HEADER,
    IDEMPOTENT,
    POST,
    RETRY_AFTER_HEADER,
    error_responses,
)
from reports import selectors
from reports.models import Report
from reports.serializers import ReportAccepted, ReportGenerateInput, ReportOutput, UsersBatchProcessInput
from reports.services import report_filename, report_request, users_export_request

logger = logging.getLogger(__name__)

NOT_FOUND = "No report with this id."
FILE_GONE = "The report's file is no longer available; generate the report again."
FILE_DESCRIPTION = "The report's file: a PDF, or CSV for a users export."
NOT_READY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "status": {"type": "string"}, "check_status_at": {"type": "string"}},
    "required": ["detail", "status", "check_status_at"],
}


def _accepted(report: Report) -> Response:
    return Response(
        {
            "task_id": report.job_id,
            "report_id": report.pk,
            "status": "generating",
            "check_status_at": f"/api/tasks/{report.job_id}/",
            "report_url": f"/api/reports/{report.pk}/",
        },
        status=status.HTTP_202_ACCEPTED,
    )


def _tenant_report_or_404(request: Request, report_id: int) -> Report:
    report = selectors.report_get(tenant_id=request.user.tenant_id, report_id=report_id)
    if report is None:
        raise NotFound(NOT_FOUND)  # the same answer whether it does not exist or is another tenant's
    return report


class ReportGenerateView(APIView):
    @extend_schema(
        request=ReportGenerateInput,
        responses={202: ReportAccepted, **error_responses(*AUTHENTICATED, *BODY, *IDEMPOTENT, *POST)},
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = ReportGenerateInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = report_request(
            tenant_id=request.user.tenant_id, user_id=request.user.id, report_type=data.validated_data["report_type"]
        )
        return _accepted(report)


class UsersBatchProcessView(APIView):
    @extend_schema(
        request=None,  # it needs no body
        responses={202: ReportAccepted, **error_responses(*AUTHENTICATED, *BODY, *IDEMPOTENT, *POST)},
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        UsersBatchProcessInput(data=request.data).is_valid(raise_exception=True)
        report = users_export_request(tenant_id=request.user.tenant_id, user_id=request.user.id)
        return _accepted(report)


class ReportPages(LimitOffsetPagination):
    """Without ``limit`` or ``offset``, the newest ``max_limit`` reports as a plain list (the contract's shape), with a
    ``Link: <…>; rel="next"`` header when there are more; with either, any page of all of them in DRF's envelope:
    ``count``, ``next``, ``previous``, ``results``."""

    max_limit = 200

    def get_limit(self, request: Request) -> int | None:
        if self.limit_query_param not in request.query_params:
            return self.max_limit if self.offset_query_param in request.query_params else None
        return min(_whole_number(request, self.limit_query_param, least=1), self.max_limit)

    def get_offset(self, request: Request) -> int:
        if self.offset_query_param not in request.query_params:
            return 0
        return _whole_number(request, self.offset_query_param, least=0)


def _whole_number(request: Request, name: str, *, least: int) -> int:
    """The query parameter as an int of at least ``least``; else a 400 naming it (DRF's pagination would ignore it)."""
    value = request.query_params[name]
    if not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) < least:
        raise ValidationError({name: [f"A whole number of at least {least}."]})
    return int(value)


PAGE_PARAMETERS = [
    OpenApiParameter("limit", {"type": "integer", "minimum": 1}, description=f"Page through all reports, at most "
                     f"{ReportPages.max_limit} a page; the answer is then {{count, next, previous, results}}. Without "
                     f"limit or offset: the newest {ReportPages.max_limit}, as a list."),
    OpenApiParameter("offset", {"type": "integer", "minimum": 0}, description="Where the page starts."),
]  # fmt: skip


REPORT_LIST = {"type": "array", "items": {"$ref": "#/components/schemas/ReportOutput"}}  # the detail view's
REPORT_PAGE = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"},
        "next": {"type": "string", "format": "uri", "nullable": True},
        "previous": {"type": "string", "format": "uri", "nullable": True},
        "results": REPORT_LIST,
    },
    "required": ["count", "next", "previous", "results"],
}


class ReportListView(APIView):
    @extend_schema(
        operation_id="reports_list",
        responses={
            200: OpenApiResponse(
                {"oneOf": [REPORT_LIST, REPORT_PAGE]},
                description='A list (with a Link rel="next" header when cut); a page with limit/offset.',
            ),
            **error_responses(*AUTHENTICATED, 400),
        },
        parameters=[*PAGE_PARAMETERS, RETRY_AFTER_HEADER],
    )
    def get(self, request: Request) -> Response:
        reports = selectors.report_list(tenant_id=request.user.tenant_id)
        pages = ReportPages()
        page = pages.paginate_queryset(reports, request, view=self)
        if page is None:
            most = pages.max_limit
            newest = list(reports[: most + 1])
            response = Response(ReportOutput(newest[:most], many=True).data)
            if len(newest) > most:  # say that there are more, and where, relative to this URL (RFC 8288)
                response["Link"] = f'<{request.path}?limit={most}&offset={most}>; rel="next"'
            return response
        return pages.get_paginated_response(ReportOutput(page, many=True).data)


class ReportDetailView(APIView):
    @extend_schema(
        responses={200: ReportOutput, **error_responses(*AUTHENTICATED, 404)}, parameters=[RETRY_AFTER_HEADER]
    )
    def get(self, request: Request, report_id: int) -> Response:
        return Response(ReportOutput(_tenant_report_or_404(request, report_id)).data)


class AnyAcceptNegotiation(BaseContentNegotiation):
    """The download answers a file whatever the client accepts; errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReportDownloadView(APIView):
    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description=FILE_DESCRIPTION),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description=FILE_DESCRIPTION),
            **{(code, "application/json"): answer for code, answer in error_responses(*AUTHENTICATED, 404).items()},
            (409, "application/json"): OpenApiResponse(
                NOT_READY, description="Not completed (yet), or failed: `detail` says which."
            ),
            (410, "application/json"): OpenApiResponse(
                DETAIL, description="Completed, but its file is no longer stored: generate the report again."
            ),
        },
        parameters=[RETRY_AFTER_HEADER],
    )
    def get(self, request: Request, report_id: int):
        report = _tenant_report_or_404(request, report_id)
        report_status, error = selectors.report_state(report=report)  # a canceled or killed job never updates the row
        if report_status != Report.Status.COMPLETED or not report.file:
            detail = (
                f"The report failed: {error}"
                if report_status == Report.Status.FAILED
                else "The report is not ready yet; poll its status and download it once it is completed."
            )
            return Response(
                {"detail": detail, "status": report_status, "check_status_at": f"/api/tasks/{report.job_id}/"},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            return report_file_response(report)
        except ReportFileMissing:
            return Response(
                {"detail": FILE_GONE, "status": report_status},
                status=status.HTTP_410_GONE,
                headers={"Cache-Control": "private, no-store"},  # a 410 may be cached by default; this may change
            )


class ReportFileMissing(Exception):
    """A completed report whose stored file cannot be opened: deleted or pruned meanwhile, or on storage this process
    does not see (a web server without the workers' media volume)."""


def report_file_response(report: Report, *, as_attachment: bool = True) -> FileResponse:
    """The report's file as a download (or inline); raises ReportFileMissing when it cannot be opened."""
    try:
        file = report.file.open("rb")
    except FileNotFoundError as exc:  # other errors (permissions, too many open files) are the server's: a 500
        logger.warning("Report %s (tenant %s): its file %s cannot be opened: %s", report.pk, report.tenant_id,
                       report.file.name, exc)  # fmt: skip
        raise ReportFileMissing(report.pk) from exc
    response = FileResponse(
        file,
        as_attachment=as_attachment,
        filename=report_filename(report),
        content_type=report.content_type or "application/octet-stream",
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
