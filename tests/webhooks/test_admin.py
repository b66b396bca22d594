"""Staff rotate secrets and look after events in /admin/."""

import datetime
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant
from jobs.models import Job
from tests.factories import TenantFactory, UserFactory
from tests.webhooks.conftest import post_delivery, renewal, sign_delivery, wait_for_event
from webhooks.models import WebhookEvent, WebhookSource

EVENTS = "/admin/webhooks/webhookevent/"
SOURCES = "/admin/webhooks/webhooksource/"


@pytest.fixture
def staff(db, client):
    client.force_login(UserFactory(tenant=None, is_staff=True, is_superuser=True))
    return client


def test_rotating_a_secret_keeps_the_old_one_verifying_for_the_grace_period(staff, billing_source, client):
    old_secret = billing_source.signing_secret

    response = staff.post(SOURCES, {"action": "rotate_secret", "_selected_action": [billing_source.pk]}, follow=True)

    billing_source.refresh_from_db()
    new_secret = billing_source.signing_secret
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    assert new_secret in response.content.decode()  # shown once, to hand to the provider
    assert billing_source.previous_secret_expires_at > timezone.now() + timedelta(hours=23)
    # both verify during the grace period
    assert post_delivery(client, sign_delivery(old_secret, {"type": "ping"})).status_code == 202
    assert post_delivery(client, sign_delivery(new_secret, {"type": "ping"})).status_code == 202

    # after it, only the new one does
    WebhookSource.objects.filter(pk=billing_source.pk).update(previous_secret_expires_at=timezone.now())
    assert post_delivery(client, sign_delivery(old_secret, {"type": "ping"})).status_code == 401
    assert post_delivery(client, sign_delivery(new_secret, {"type": "ping"})).status_code == 202


def test_events_can_be_listed_filtered_and_read_as_pretty_json(staff, billing_source, client):
    post_delivery(client, sign_delivery(billing_source.signing_secret, {"type": "invoice.paid", "data": {"n": 1}}))
    post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme")))
    WebhookEvent.objects.filter(type="invoice.paid").update(status="ignored")
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)  # what the "Today" filter sends

    listing = staff.get(EVENTS, {"status__exact": "ignored", "type": "invoice.paid", "source__id__exact":
                                 billing_source.pk, "received_at__gte": str(today)})  # fmt: skip

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    event = WebhookEvent.objects.get(type="invoice.paid")
    detail = staff.get(f"{EVENTS}{event.pk}/change/")
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "<pre>{\n  &quot;data&quot;: {\n    &quot;n&quot;: 1\n  }," in html
    assert 'name="payload"' not in html  # read-only: nothing to edit


@pytest.mark.django_db(transaction=True)
def test_reprocess_runs_the_event_through_the_task_again(celery_worker, staff, billing_source, client):
    tenant = TenantFactory(name="Acme")
    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme", "2031-01-31")))
    event = wait_for_event(response.json()["event_id"])
    Tenant.objects.filter(pk=tenant.pk).update(subscription_current_period_end=None)  # e.g. undone by mistake

    answer = staff.post(EVENTS, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True)

    assert answer.status_code == 200
    [job] = Job.objects.filter(kind="process_webhook").exclude(task_id=event.job_id)
    assert job.task_id in answer.content.decode()
    event = wait_for_event(event.pk)
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2031, 1, 31)
    assert (event.status, event.attempts, event.job_id) == ("processed", 2, response.json()["task_id"])
