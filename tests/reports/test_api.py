"""The reports API without a worker: validation, shapes, 409 before completion, tenant isolation."""

import pytest

from jobs.models import Job
from reports.api import ReportPages
from reports.models import Report
from reports.services import report_request
from tests.conftest import client_for
from tests.factories import TenantFactory, UserFactory
from tests.reports.conftest import pdf_text

pytestmark = pytest.mark.django_db


def test_generate_answers_202_with_the_ids_and_records_a_pending_report_and_its_job(api):
    response = api.post("/api/reports/generate/", {"report_type": "users"}, format="json")

    assert response.status_code == 202
    body = response.json()
    report = Report.objects.get()
    assert body["report_id"] == report.pk
    assert body["status"] == "generating"
    assert body["check_status_at"] == f"/api/tasks/{body['task_id']}/"
    assert report.job_id == body["task_id"] and report.status == "pending"
    job = Job.objects.get(task_id=body["task_id"])
    assert (job.task_name, job.kwargs, job.tenant_id) == ("reports.generate_report", {"report_id": report.pk},
                                                          api.user.tenant_id)  # fmt: skip


@pytest.mark.parametrize("payload", [{"report_type": "payroll"}, {}, {"report_type": ""}, {"report_type": ["users"]}])
def test_an_unknown_report_type_is_refused_naming_the_valid_ones(api, payload):
    response = api.post("/api/reports/generate/", payload, format="json")

    assert response.status_code == 400
    [message] = response.json()["report_type"]
    assert "users" in message and "activity" in message
    assert not Report.objects.exists() and not Job.objects.exists()


def test_the_same_idempotency_key_makes_one_report(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "monthly-users-2026-11"}
    first = api.post("/api/reports/generate/", {"report_type": "activity"}, format="json", **headers)
    second = api.post("/api/reports/generate/", {"report_type": "activity"}, format="json", **headers)

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert Report.objects.count() == 1


def test_the_list_is_the_newest_reports_and_limit_and_offset_page_through_all(api, tenant_user):
    made = [
        api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()["report_id"]
        for _ in range(3)
    ]
    report_request(tenant_id=TenantFactory().pk, user_id=None, report_type="users")  # another tenant's: never counted

    listed = api.get("/api/reports/").json()
    first = api.get("/api/reports/", {"limit": 2}).json()
    rest = api.get("/api/reports/", {"limit": 2, "offset": 2}).json()

    assert [r["id"] for r in listed] == made[::-1]
    assert (first["count"], [r["id"] for r in first["results"]], first["previous"]) == (3, made[:0:-1], None)
    assert "offset=2" in first["next"]
    assert (rest["count"], [r["id"] for r in rest["results"]], rest["next"]) == (3, made[:1], None)


def test_a_list_cut_at_its_limit_links_to_the_rest(api, tenant_user, monkeypatch):
    monkeypatch.setattr(ReportPages, "max_limit", 2)
    for _ in range(3):
        report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")

    cut = api.get("/api/reports/")
    whole = api.get("/api/reports/", {"limit": 2})

    assert len(cut.json()) == 2
    assert cut["Link"] == '</api/reports/?limit=2&offset=2>; rel="next"'
    assert whole.json()["count"] == 3 and not whole.has_header("Link")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 2, "offset": -1}, "offset"),
        ({"offset": "²"}, "offset"),
        ({"limit": "9" * 5000}, "limit"),  # past Python's 4,300-digit int() limit
    ],
)
def test_a_bad_page_parameter_answers_400_naming_it(api, query, field):
    response = api.get("/api/reports/", query)

    assert response.status_code == 400
    assert field in response.json()


def test_list_and_detail_show_the_contract_fields_and_download_is_409_until_completed(api):
    report_id = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()["report_id"]

    listed = api.get("/api/reports/").json()
    detail = api.get(f"/api/reports/{report_id}/").json()
    download = api.get(f"/api/reports/{report_id}/download/", HTTP_ACCEPT="application/pdf")

    assert [r["id"] for r in listed] == [report_id]
    for field in ("id", "report_type", "status", "created_at", "completed_at", "download_url", "error"):
        assert field in detail
    assert (detail["status"], detail["download_url"], detail["completed_at"]) == ("pending", None, None)
    assert download.status_code == 409
    assert download.json()["status"] == "pending" and "not ready" in download.json()["detail"]


def test_a_canceled_report_answers_its_download_as_failed_not_as_not_ready_yet(api):
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    assert api.post(f"/api/tasks/{accepted['task_id']}/cancel/").status_code == 202

    detail = api.get(f"/api/reports/{accepted['report_id']}/").json()
    download = api.get(f"/api/reports/{accepted['report_id']}/download/", HTTP_ACCEPT="application/pdf")

    assert (detail["status"], detail["error"]) == ("failed", "Canceled.")
    assert download.status_code == 409
    assert download.json()["status"] == "failed"
    assert download.json()["detail"] == "The report failed: Canceled."


def test_a_report_canceled_before_it_started_stays_failed_once_its_job_is_pruned(api):
    accepted = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()
    assert api.post(f"/api/tasks/{accepted['task_id']}/cancel/").status_code == 202

    Job.objects.filter(task_id=accepted["task_id"]).delete()  # what cleanup_old_logs does with old jobs

    detail = api.get(f"/api/reports/{accepted['report_id']}/").json()
    assert (detail["status"], detail["error"]) == ("failed", "Canceled.")
    assert Report.objects.get(pk=accepted["report_id"]).completed_at is not None  # so retention prunes it in time


def test_error_is_null_until_the_report_fails_then_says_why_like_a_tasks(api):
    report_id = api.post("/api/reports/generate/", {"report_type": "users"}, format="json").json()["report_id"]

    assert api.get(f"/api/reports/{report_id}/").json()["error"] is None
    assert api.get("/api/reports/").json()[0]["error"] is None

    Report.objects.filter(pk=report_id).update(status=Report.Status.FAILED, error="The disk is full.")

    assert api.get(f"/api/reports/{report_id}/").json()["error"] == "The disk is full."
    assert api.get("/api/reports/").json()[0]["error"] == "The disk is full."


def test_a_completed_report_downloads_as_a_pdf(api, completed_report):
    detail = api.get(f"/api/reports/{completed_report.pk}/").json()
    assert detail["status"] == "completed"
    assert detail["download_url"] == f"/api/reports/{completed_report.pk}/download/"

    response = api.get(detail["download_url"], HTTP_ACCEPT="application/pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="acme-users-')
    reader, text = pdf_text(b"".join(response.streaming_content))
    assert "Acme" in text and api.user.email in text
    assert len(reader.pages) == completed_report.page_count == detail["page_count"]


def test_another_tenants_reports_answer_404_like_missing_ones(completed_report):
    stranger = client_for(UserFactory(tenant=TenantFactory(name="Globex")))
    missing = stranger.get("/api/reports/999999/")

    for path in ("", "download/"):
        response = stranger.get(f"/api/reports/{completed_report.pk}/{path}")
        assert response.status_code == 404
        assert response.json() == missing.json()
    assert stranger.get("/api/reports/").json() == []
    assert stranger.get(f"/api/tasks/{completed_report.job_id}/").status_code == 404


def test_batch_process_answers_202_and_queues_the_users_export(api):
    response = api.post("/api/users/batch-process/", {}, format="json")

    assert response.status_code == 202
    body = response.json()
    report = Report.objects.get(pk=body["report_id"])
    assert report.report_type == "users_csv" and report.job_id == body["task_id"]
    assert Job.objects.get(task_id=body["task_id"]).task_name == "reports.batch_process_users"


def test_batch_process_needs_no_body_at_all(api):
    # `curl -X POST` sends none; only a body that is there but not an object is refused (tests/hostile)
    response = api.post("/api/users/batch-process/")

    assert response.status_code == 202, response.content
    assert Report.objects.get(pk=response.json()["report_id"]).report_type == "users_csv"


def test_the_api_needs_a_token(client):
    assert client.get("/api/reports/").status_code in (401, 403)
    assert client.post("/api/reports/generate/", {"report_type": "users"}).status_code in (401, 403)


def test_a_completed_report_whose_file_is_gone_answers_410_in_json(api, completed_report):
    completed_report.file.storage.delete(completed_report.file.name)  # pruned, or a volume the web does not see

    response = api.get(f"/api/reports/{completed_report.pk}/download/")

    assert response.status_code == 410 and response["Cache-Control"] == "private, no-store"
    assert response.json() == {
        "detail": "The report's file is no longer available; generate the report again.",
        "status": "completed",
    }
