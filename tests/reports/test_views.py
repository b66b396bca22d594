"""The pages: login required, a form that asks for a report, a status endpoint, downloads, shared links."""

import re
import time

import pytest
from django.test import Client

from jobs.models import Job
from reports.models import Report
from reports.services import report_share_token
from tests.conftest import client_for
from tests.factories import TenantFactory, UserFactory
from tests.reports.conftest import pdf_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(tenant_user) -> Client:
    client = Client()
    client.force_login(tenant_user)
    return client


def test_pages_need_a_login(client, completed_report):
    for path in ("/reports/", f"/reports/{completed_report.pk}/", f"/reports/{completed_report.pk}/download/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_the_list_page_asks_for_a_report_and_shows_it(browser, tenant_user):
    page = browser.get("/reports/")
    assert page.status_code == 200
    assert b'name="report_type"' in page.content and b"No reports yet" in page.content

    response = browser.post("/reports/", {"report_type": "activity"})

    report = Report.objects.get()
    assert (report.report_type, report.tenant_id, report.requested_by_id) == ("activity", tenant_user.tenant_id,
                                                                                tenant_user.id)  # fmt: skip
    assert response.status_code == 302 and response["Location"] == f"/reports/{report.pk}/"
    assert b"Activity (last 30 days)" in browser.get("/reports/").content


def test_a_bad_choice_on_the_form_changes_nothing(browser):
    response = browser.post("/reports/", {"report_type": "payroll"})

    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert not Report.objects.exists()


def test_the_export_button_queues_the_users_csv(browser):
    response = browser.post("/reports/", {"export": "1"})

    report = Report.objects.get()
    assert report.report_type == "users_csv"
    assert response["Location"] == f"/reports/{report.pk}/"


def test_the_report_page_and_its_status_endpoint_follow_the_report(browser, tenant_user):
    browser.post("/reports/", {"report_type": "users"})
    report = Report.objects.get()

    page = browser.get(f"/reports/{report.pk}/")
    status = browser.get(f"/reports/{report.pk}/status/").json()
    not_ready = browser.get(f"/reports/{report.pk}/download/")

    assert b'data-status="pending"' in page.content and b"fetch(" in page.content
    assert (status["status"], status["download_url"], status["share_url"]) == ("pending", None, None)
    assert not_ready.status_code == 409


def test_the_download_page_of_a_canceled_report_says_it_failed(browser, tenant_user):
    browser.post("/reports/", {"report_type": "users"})
    report = Report.objects.get()
    assert client_for(tenant_user).post(f"/api/tasks/{report.job_id}/cancel/").status_code == 202

    not_ready = browser.get(f"/reports/{report.pk}/download/")

    assert not_ready.status_code == 409
    assert b"This report failed: Canceled." in not_ready.content


def test_the_cancel_button_cancels_the_report_and_the_page_says_so(browser, tenant_user):
    browser.post("/reports/", {"report_type": "users"})
    report = Report.objects.get()
    assert b'id="cancel"' in browser.get(f"/reports/{report.pk}/").content

    response = browser.post(f"/reports/{report.pk}/cancel/")

    assert (response.status_code, response["Location"]) == (302, f"/reports/{report.pk}/")
    job = Job.objects.get(task_id=report.job_id)
    assert job.canceled_by_id == tenant_user.id
    status = browser.get(f"/reports/{report.pk}/status/").json()
    assert (status["status"], status["error"]) == ("failed", "Canceled.")
    page = browser.get(response["Location"]).content.decode()  # the page it lands on
    assert "The report was canceled." in page
    assert re.search(r'<form id="cancel-form"[^>]* hidden>', page)  # no button once it is over
    # a second press changes nothing, lands on the same page and says why
    again = browser.post(f"/reports/{report.pk}/cancel/", follow=True)
    assert again.redirect_chain == [(f"/reports/{report.pk}/", 302)]
    assert "Not canceled: it is already canceled." in again.content.decode()
    assert Job.objects.get(task_id=report.job_id).canceled_at == job.canceled_at


def test_the_cancel_button_is_a_post_of_this_tenant_with_its_csrf_token(browser, tenant_user):
    browser.post("/reports/", {"report_type": "users"})
    report = Report.objects.get()
    stranger = Client()
    stranger.force_login(UserFactory(tenant=TenantFactory(name="Globex")))
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(tenant_user)

    assert stranger.post(f"/reports/{report.pk}/cancel/").status_code == 404
    assert forged.post(f"/reports/{report.pk}/cancel/").status_code == 403
    assert browser.get(f"/reports/{report.pk}/cancel/").status_code == 405
    assert Job.objects.get(task_id=report.job_id).canceled_at is None


def test_a_completed_report_page_offers_the_download_and_a_share_link(browser, completed_report):
    status = browser.get(f"/reports/{completed_report.pk}/status/").json()
    download = browser.get(status["download_url"])

    assert status["status"] == "completed" and status["page_count"] == completed_report.page_count
    assert status["share_url"].startswith("http://testserver/reports/shared/")
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert "Acme" in pdf_text(b"".join(download.streaming_content))[1]


def test_another_tenants_user_gets_404_on_every_page(completed_report):
    stranger = Client()
    stranger.force_login(UserFactory(tenant=TenantFactory(name="Globex")))

    for path in ("", "status/", "download/"):
        assert stranger.get(f"/reports/{completed_report.pk}/{path}").status_code == 404
    assert f"/reports/{completed_report.pk}/".encode() not in stranger.get("/reports/").content


def test_a_share_link_opens_the_pdf_without_an_account(client, completed_report):
    response = client.get(f"/reports/shared/{report_share_token(report=completed_report)}/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline;")
    assert "Acme" in pdf_text(b"".join(response.streaming_content))[1]


def test_a_report_whose_file_is_gone_answers_410_on_its_download_page_and_share_link(browser, client, completed_report):
    share_path = f"/reports/shared/{report_share_token(report=completed_report)}/"
    completed_report.file.storage.delete(completed_report.file.name)

    for who, path in ((browser, f"/reports/{completed_report.pk}/download/"), (client, share_path)):
        response = who.get(path)
        assert response.status_code == 410
        assert b"no longer available" in response.content


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # the signature
        lambda token: "999999" + token[token.index(":") :],  # another report id, same signature
        lambda token: "not-a-token",
    ],
)
def test_a_tampered_share_link_is_refused(client, completed_report, tamper):
    response = client.get(f"/reports/shared/{tamper(report_share_token(report=completed_report))}/")

    assert response.status_code == 404
    assert b"not valid" in response.content
    assert response["Content-Type"].startswith("text/html")


def test_an_expired_share_link_is_refused(client, completed_report, settings):
    settings.REPORTS_SHARE_MAX_AGE = 1
    token = report_share_token(report=completed_report)
    time.sleep(2.1)  # signatures carry whole seconds

    response = client.get(f"/reports/shared/{token}/")

    assert response.status_code == 410
    assert b"expired" in response.content
