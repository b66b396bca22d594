from rest_framework import serializers

from reports.models import Report
from reports.selectors import report_state
from reports.services import PDF_TYPES, report_download_path

VALID_TYPES = ", ".join(PDF_TYPES)


SHOWN_INPUT_MAX_CHARS = 50


class ReportTypeField(serializers.ChoiceField):
    """A choice that must be a string, and whose error echoes the input safely (escaped, cut short)."""

    default_error_messages = {"not_a_string": f"Must be a string, one of: {VALID_TYPES}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        if data in self.choice_strings_to_values:
            return self.choice_strings_to_values[data]
        # A lone surrogate echoed as is could not be encoded in the JSON answer (a 500); show it escaped.
        shown = data[:SHOWN_INPUT_MAX_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")
        self.fail("invalid_choice", input=shown + ("…" if len(data) > SHOWN_INPUT_MAX_CHARS else ""))


class ReportGenerateInput(serializers.Serializer):
    report_type = ReportTypeField(
        choices=list(PDF_TYPES),
        error_messages={
            "invalid_choice": f'Unknown report type "{{input}}". Valid types: {VALID_TYPES}.',
            "required": f"This field is required. Valid types: {VALID_TYPES}.",
        },
    )


class UsersBatchProcessInput(serializers.Serializer):
    """No fields; read so that a body that is not a JSON object is refused as on every other endpoint."""


class ReportAccepted(serializers.Serializer):
    task_id = serializers.CharField()
    report_id = serializers.IntegerField()
    status = serializers.CharField()
    check_status_at = serializers.CharField()
    report_url = serializers.CharField()


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

    def get_error(self, report: Report) -> str | None:
        return report_state(report=report)[1] or None  # null when there is none, as a task's error

    def get_download_url(self, report: Report) -> str | None:
        return report_download_path(report) if report.status == Report.Status.COMPLETED else None
