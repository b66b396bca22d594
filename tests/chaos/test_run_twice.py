"""Every task kind, delivered twice with the same arguments, has its effect once.

Each case runs the task through a real worker, then hands the worker the very same message again (same task id, same
arguments, as a redelivery would) and checks what a user would see: one email, one file, one change.
"""

import datetime

import pytest
from django.utils import timezone

from accounts.models import Tenant
from config.celery import app as celery_app
from notifications.models import OutboundEmail
from reports.models import Report
from tests.conftest import wait_for_status
from tests.factories import UserFactory
from tests.reports.conftest import stored_files_of
from tests.webhooks.conftest import post_delivery, renewal, sign_delivery, wait_for_event
from webhooks.models import WebhookSource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def run_again(task_name: str, kwargs: dict, task_id: str | None = None) -> dict:
    return celery_app.send_task(task_name, kwargs=kwargs, task_id=task_id).get(timeout=60)


def test_send_email_twice_sends_one_email(celery_worker, smtp_server, api):
    task_id = api.post("/api/send-email/", {"to_email": "a@example.com", "subject": "s", "body": "b"}, format="json")
    task_id = task_id.json()["task_id"]
    wait_for_status(api, task_id)
    email = OutboundEmail.objects.get()

    run_again("notifications.send_email", {"email_id": email.pk}, task_id)

    assert len(smtp_server.wait_for(2, timeout=1)) == 1


@pytest.mark.parametrize(("path", "body"), [("/api/reports/generate/", {"report_type": "users"}),
                                            ("/api/reports/generate/", {"report_type": "activity"}),
                                            ("/api/users/batch-process/", {})])  # fmt: skip
def test_report_and_export_twice_make_one_file(celery_worker, api, path, body):
    accepted = api.post(path, body, format="json").json()
    wait_for_status(api, accepted["task_id"])
    report = Report.objects.get()
    first = (report.file.name, report.completed_at)

    task_name = "reports.batch_process_users" if "batch" in path else "reports.generate_report"
    run_again(task_name, {"report_id": report.pk}, accepted["task_id"])

    report.refresh_from_db()
    assert report.status == "completed"
    assert (report.file.name, report.completed_at) == first
    assert len(stored_files_of(report)) == 1


def test_process_webhook_twice_applies_its_change_once(celery_worker, client):
    source = WebhookSource.objects.create(slug="billing")
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    response = post_delivery(client, sign_delivery(source.signing_secret, renewal("acme", "2031-01-31")))
    event = wait_for_event(response.json()["event_id"])
    Tenant.objects.filter(pk=tenant.pk).update(subscription_current_period_end=datetime.date(2035, 1, 1))

    run_again("webhooks.process_webhook", {"event_id": event.pk}, event.job_id)

    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2035, 1, 1)  # not set back by a second run


def test_renewal_reminders_twice_email_each_admin_once(celery_worker, smtp_server):
    today = timezone.now().date()
    tenant = Tenant.objects.create(name="Acme", slug="acme", subscription_current_period_end=today)
    UserFactory(tenant=tenant, is_staff=True)

    for _ in range(2):
        run_again("notifications.check_subscription_renewals", {"day": today.isoformat()})

    assert len(smtp_server.wait_for(2, timeout=3)) == 1
    assert OutboundEmail.objects.count() == 1


def test_weekly_digest_twice_emails_each_active_user_once(celery_worker, smtp_server):
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    UserFactory.create_batch(2, tenant=tenant)
    at = timezone.now().isoformat()

    for _ in range(2):
        run_again("notifications.send_weekly_digest", {"at": at})

    assert len(smtp_server.wait_for(3, timeout=3)) == 2


def test_cleanup_twice_deletes_once(celery_worker, api, settings):
    settings.JOBS_RETENTION_DAYS = 1
    task_id = api.post("/api/send-email/", {"to_email": "a@example.com", "subject": "s", "body": "b"}, format="json")
    wait_for_status(api, task_id.json()["task_id"])
    from django_celery_results.models import TaskResult

    TaskResult.objects.update(date_done=timezone.now() - datetime.timedelta(days=2))

    first = run_again("jobs.cleanup_old_logs", {})
    second = run_again("jobs.cleanup_old_logs", {})

    assert first["jobs"] == 1
    assert not any(second.get(label) for label in ("jobs", "task results"))
