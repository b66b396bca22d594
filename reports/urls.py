"""API routes, mounted under /api/ by config/urls.py."""

from django.urls import path

from reports.api import (
    ReportDetailView,
    ReportDownloadView,
    ReportGenerateView,
    ReportListView,
    UsersBatchProcessView,
)

urlpatterns = [
    path("reports/", ReportListView.as_view(), name="report-list"),
    path("reports/generate/", ReportGenerateView.as_view(), name="report-generate"),
    path("reports/<int:report_id>/", ReportDetailView.as_view(), name="report-detail"),
    path("reports/<int:report_id>/download/", ReportDownloadView.as_view(), name="report-download"),
    path("users/batch-process/", UsersBatchProcessView.as_view(), name="users-batch-process"),
]
