"""The other apps plug into the jobs machinery: their rows are pruned by cleanup_old_logs, their failures retried."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from jobs import maintenance
from reports.models import Report
from reports.services import report_generate, report_request
from tests.conftest import wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)


def test_cleanup_prunes_reports_and_webhook_events_as_registered_pruners():
    assert {"report files", "webhook events"} <= set(maintenance._pruners)


def test_old_finished_reports_lose_row_and_file_recent_and_unfinished_ones_stay(tenant_user, settings):
    settings.REPORTS_RETENTION_DAYS = 30
    ages = {"old-done": 31, "old-failed": 31, "recent-done": 29, "old-pending": 90}
    reports = {}
    for label, days in ages.items():
        report = report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")
        if label.endswith("done"):
            report = report_generate(report_id=report.pk)
        elif label.endswith("failed"):
            Report.objects.filter(pk=report.pk).update(status=Report.Status.FAILED, error="boom")
        Report.objects.filter(pk=report.pk).update(created_at=timezone.now() - timedelta(days=days))
        reports[label] = Report.objects.get(pk=report.pk)
    old_file = reports["old-done"].file.name
    assert default_storage.exists(old_file)

    deleted = maintenance._pruners["report files"](now=timezone.now(), batch_size=1)

    assert deleted == 2
    assert set(Report.objects.values_list("pk", flat=True)) == {reports["recent-done"].pk, reports["old-pending"].pk}
    assert not default_storage.exists(old_file)
    assert default_storage.exists(reports["recent-done"].file.name)


def test_retry_failed_gives_a_failed_report_a_new_job_that_completes(celery_worker, api, settings):
    # given a report whose generation failed for good
    settings.REPORTS_MAX_RETRIES = 0
    response = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    wait_for_status(api, response["task_id"])
    Report.objects.filter(pk=response["report_id"]).update(status=Report.Status.FAILED, error="disk full")
    from django_celery_results.models import TaskResult

    TaskResult.objects.filter(task_id=response["task_id"]).update(status="FAILURE")

    # when an operator retries failed report jobs
    call_command("retry_failed", "--kind", "report_users")

    # then the report gets a new job and completes
    report = Report.objects.get(pk=response["report_id"])
    assert report.job_id != response["task_id"]
    assert wait_for_status(api, report.job_id)["status"] == "SUCCESS"
    report.refresh_from_db()
    assert report.status == Report.Status.COMPLETED and report.error == ""
    assert api.get(f"/api/reports/{report.pk}/download/").status_code == 200


def test_a_file_stored_by_an_attempt_that_died_before_recording_it_is_replaced_not_doubled(tenant_user):
    from tests.reports.conftest import stored_files_of

    report = report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")
    first = report_generate(report_id=report.pk).file.name
    # as if the worker died after writing the file and before the row said so
    Report.objects.filter(pk=report.pk).update(status=Report.Status.GENERATING, file="")

    again = report_generate(report_id=report.pk)

    assert again.status == Report.Status.COMPLETED and again.file.name == first
    assert stored_files_of(again) == [first.rsplit("/", 1)[1]]
