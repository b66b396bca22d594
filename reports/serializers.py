from rest_framework import serializers

from reports.models import Report
from reports.selectors import report_state
from reports.services import PDF_TYPES, report_download_path

VALID_TYPES = ", ".join(PDF_TYPES)


class ReportGenerateInput(serializers.Serializer):
    report_type = serializers.ChoiceField(
        choices=list(PDF_TYPES),
        error_messages={
            "invalid_choice": f'Unknown report type "{{input}}". Valid types: {VALID_TYPES}.',
            "required": f"This field is required. Valid types: {VALID_TYPES}.",
        },
    )


class ReportAccepted(serializers.Serializer):
    task_id = serializers.CharField()
    report_id = serializers.IntegerField()
    status = serializers.CharField()
    check_status_at = serializers.CharField()


class ReportOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id", "report_type", "status", "created_at", "completed_at", "download_url", "error",
            "task_id", "started_at", "page_count", "size_bytes", "render_seconds", "summary",
        ]  # fmt: skip

    task_id = serializers.CharField(source="job_id", read_only=True)
    status = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    def get_status(self, report: Report) -> str:
        return report_state(report=report)[0]

    def get_error(self, report: Report) -> str:
        return report_state(report=report)[1]

    def get_download_url(self, report: Report) -> str | None:
        return report_download_path(report) if report.status == Report.Status.COMPLETED else None
