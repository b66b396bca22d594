"""Subscription renewal reminders: the right people, once per tenant and day."""

from datetime import date, timedelta

import pytest

from notifications.models import OutboundEmail
from notifications.tasks import check_subscription_renewals
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 23)


def test_admins_of_tenants_renewing_today_are_reminded_once_even_if_run_twice():
    # given a tenant with an admin renewing today, one without admins, and one renewing tomorrow
    acme = TenantFactory(name="Acme", subscription_current_period_end=TODAY)
    UserFactory(tenant=acme, email="boss@acme.example", is_staff=True)
    UserFactory(tenant=acme, email="staff-gone@acme.example", is_staff=True, is_active=False)
    UserFactory(tenant=acme, email="member@acme.example")
    solo = TenantFactory(name="Solo", subscription_current_period_end=TODAY)
    UserFactory(tenant=solo, email="one@solo.example")
    UserFactory(tenant=solo, email="two@solo.example")
    UserFactory(tenant=solo, email="left@solo.example", is_active=False)
    later = TenantFactory(name="Later", subscription_current_period_end=TODAY + timedelta(days=1))
    UserFactory(tenant=later, email="boss@later.example", is_staff=True)

    # when the check runs twice that day
    first = check_subscription_renewals.apply(kwargs={"day": TODAY.isoformat()}).get()
    second = check_subscription_renewals.apply(kwargs={"day": TODAY.isoformat()}).get()

    # then the admin (or, with none, every active user) has one reminder, with its Job, and nobody else
    assert (first["emails"], second["emails"]) == (3, 0)
    emails = OutboundEmail.objects.order_by("to_email")
    assert [e.to_email for e in emails] == ["boss@acme.example", "one@solo.example", "two@solo.example"]
    boss = emails[0]
    assert boss.subject == "Your Acme subscription renews today"
    assert "Monday 23 November 2026 (UTC)" in boss.body
    assert boss.dedupe_key.startswith(f"renewal:{acme.pk}:2026-11-23:user:")
    assert all(e.job_id and e.tenant_id in (acme.pk, solo.pk) for e in emails)

    # and the next day is a new reminder day
    UserFactory(tenant=later, email="x@later.example")
    assert check_subscription_renewals.apply(kwargs={"day": "2026-11-24"}).get()["emails"] == 1
