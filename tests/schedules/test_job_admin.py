"""The jobs admin: filters, and retry and cancel actions recorded with who did them."""

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from jobs.models import Job
from jobs.selectors import job_state
from notifications.models import OutboundEmail
from notifications.services import email_request
from tests.factories import TenantFactory
from tests.schedules.conftest import finished_job

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/jobs/job/"


def test_filters_by_kind_state_and_tenant(admin_client):
    acme = TenantFactory(name="Acme")
    failed = finished_job(tenant=acme, kind="send_email", status="FAILURE")
    finished_job(tenant=acme, kind="generate_report", status="SUCCESS")
    finished_job(kind="send_email", status="SUCCESS")

    page = admin_client.get(LIST_URL, {"kind": "send_email", "state": "FAILURE", "tenant__id__exact": acme.pk})

    assert page.status_code == 200
    assert list(page.context["cl"].queryset) == [failed]


def test_each_state_filter_shows_the_jobs_the_status_api_calls_so(admin_client):
    # given jobs in every state, canceled ones among them: before they started, while running, and one that finished
    # in the moment after its cancel
    tenant = TenantFactory()
    now = timezone.now()
    Job.objects.create(task_id="never-ran", tenant=tenant, kind="send_email", task_name="x")
    Job.objects.create(task_id="canceled-waiting", tenant=tenant, kind="send_email", task_name="x", canceled_at=now)
    for status in ("STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"):
        finished_job(tenant=tenant, status=status)
    finished_job(tenant=tenant, kind="report_users", status="PROGRESS", canceled_at=now)
    late = finished_job(tenant=tenant, kind="report_users", status="SUCCESS", canceled_at=now)

    # then each state's filter lists exactly the jobs whose state the status API shows as that state
    states_of = {job.task_id: job_state(job=job) for job in Job.objects.select_related("result")}
    shown = {}
    for state in ("PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED"):
        page = admin_client.get(LIST_URL, {"state": state})
        shown[state] = {job.task_id for job in page.context["cl"].queryset}
        assert shown[state] == {task_id for task_id, its in states_of.items() if its == state}, state
        assert shown[state], state
    assert late.task_id in shown["SUCCESS"] and late.task_id not in shown["REVOKED"]


def test_retry_puts_a_failed_email_back_under_a_new_job_and_logs_who(admin_client, superuser):
    tenant = TenantFactory()
    email = email_request(tenant_id=tenant.pk, user_id=None, to_email="a@example.com", subject="s", body="b")
    old_job = Job.objects.get(task_id=email.job_id)
    finished_job(tenant=tenant, kind="generate_report", status="FAILURE")  # not selected
    OutboundEmail.objects.filter(pk=email.pk).update(status="failed", error="SMTP 550: no")
    from django_celery_results.models import TaskResult

    TaskResult.objects.create(task_id=old_job.task_id, status="FAILURE", task_name="notifications.send_email")

    response = admin_client.post(LIST_URL, {"action": "retry_jobs", "_selected_action": [old_job.pk]}, follow=True)

    assert [str(message) for message in response.context["messages"]] == ["1 job(s) retried."]
    email.refresh_from_db()
    assert (email.status, email.error) == ("queued", "")
    new_job = Job.objects.get(task_id=email.job_id)
    assert new_job.pk != old_job.pk and new_job.kwargs == {"email_id": email.pk}
    entry = LogEntry.objects.get(object_id=str(old_job.pk))
    assert entry.user == superuser and entry.get_change_message() == f"Retried as job {new_job.task_id}."

    # a second retry of the same job is refused
    again = admin_client.post(LIST_URL, {"action": "retry_jobs", "_selected_action": [old_job.pk]}, follow=True)
    [refusal] = [str(message) for message in again.context["messages"]]
    assert refusal.startswith(f"{old_job.task_id} not retried: Already retried as {new_job.task_id}")
    assert Job.objects.filter(kind="send_email").count() == 2


def test_cancel_marks_the_job_canceled_by_the_admin_and_refuses_finished_ones(admin_client, superuser):
    waiting = Job.objects.create(task_id="waiting-1", tenant=TenantFactory(), kind="send_email", task_name="x")
    done = finished_job(status="SUCCESS")

    response = admin_client.post(
        LIST_URL, {"action": "cancel_jobs", "_selected_action": [waiting.pk, done.pk]}, follow=True
    )

    waiting.refresh_from_db()
    assert waiting.canceled_by == superuser and job_state(job=waiting) == "REVOKED"
    assert LogEntry.objects.get(object_id=str(waiting.pk)).get_change_message() == "Canceled."
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [
        f"{done.task_id} not canceled: The task is SUCCESS and can no longer be canceled.",
        "1 job(s) canceled.",
    ]
    assert not LogEntry.objects.filter(object_id=str(done.pk)).exists()


def test_tenants_and_users_pages_answer_for_a_superuser(admin_client):
    from tests.factories import UserFactory

    tenant = TenantFactory(name="Acme")
    UserFactory(tenant=tenant, email="ada@acme.example")
    UserFactory(tenant=tenant, email="gone@acme.example", is_active=False)

    listing = admin_client.get("/admin/accounts/tenant/")
    assert listing.status_code == 200
    assert listing.context["cl"].queryset.get().active_user_count == 1
    detail = admin_client.get(f"/admin/accounts/tenant/{tenant.pk}/change/")
    assert detail.status_code == 200 and b"ada@acme.example" in detail.content
    assert admin_client.get("/admin/accounts/user/", {"tenant__id__exact": tenant.pk}).status_code == 200
    assert admin_client.get("/admin/notifications/outboundemail/").status_code == 200
    assert admin_client.get("/admin/django_celery_results/taskresult/").status_code == 200


def test_retry_hooks_are_found_by_kind_or_prefix(settings):
    from jobs.retry import retry_hook
    from notifications.services import email_retry

    settings.JOBS_RETRY_HOOKS = {"report_*": "notifications.services.email_retry"}

    assert retry_hook("send_email") is email_retry
    assert retry_hook("report_users") is email_retry
    assert retry_hook("fetch_external_data") is None  # re-enqueued as it was
