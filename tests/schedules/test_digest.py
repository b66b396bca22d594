"""The weekly digest: one email per active user per week, through a real worker and SMTP server."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import OutboundEmail
from notifications.services import digest_week_for
from notifications.tasks import send_weekly_digest
from tests.factories import TenantFactory, UserFactory
from tests.schedules.conftest import finished_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_twice_each_active_user_gets_one_digest_and_inactive_users_none(celery_worker, smtp_server):
    # given two tenants, with active and inactive users, and a week of work in one of them
    acme, globex = TenantFactory(name="Acme"), TenantFactory(name="Globex")
    ada = UserFactory(tenant=acme, email="ada@acme.example", first_name="Ada")
    UserFactory(tenant=acme, email="bob@acme.example")
    UserFactory(tenant=acme, email="gone@acme.example", is_active=False)
    UserFactory(tenant=globex, email="gia@globex.example")
    UserFactory(tenant=None, email="root@example.com", is_staff=True, is_superuser=True)  # no tenant, no digest
    week = digest_week_for(at=timezone.now())
    in_week = week.start + timedelta(days=2)
    for status in ("SUCCESS", "SUCCESS", "FAILURE"):
        finished_job(tenant=acme, kind="send_email", status=status, accepted_at=in_week)
    finished_job(tenant=acme, kind="generate_report", status="SUCCESS", accepted_at=in_week)
    finished_job(tenant=acme, kind="send_email", status="SUCCESS", accepted_at=week.start - timedelta(days=1))
    OutboundEmail.objects.create(tenant=acme, to_email="x@y.example", subject="s", body="b", status="sent",
                                 created_at=in_week)  # fmt: skip

    # when beat's task runs, and runs again the same week
    first = send_weekly_digest.delay().get(timeout=30)
    messages = smtp_server.wait_for(3)
    second = send_weekly_digest.delay().get(timeout=30)

    # then every active user with a tenant got exactly one email
    assert first == {"week": week.label, "emails": 3}
    assert second == {"week": week.label, "emails": 0}
    assert len(smtp_server.wait_for(4, timeout=2)) == 3
    assert sorted(m["To"] for m in messages) == ["ada@acme.example", "bob@acme.example", "gia@globex.example"]
    [to_ada] = [m for m in messages if m["To"] == "ada@acme.example"]
    assert to_ada["Subject"] == f"Your weekly summary for Acme ({week.label})"
    body = to_ada.get_payload().replace("\r\n", "\n")
    assert "Hello Ada," in body
    assert "send_email: 1 failed, 2 succeeded" in body  # the job outside the week is not counted
    assert "generate_report: 1 succeeded" in body
    assert "Emails: 1 sent, 0 failed, 0 queued" in body
    [to_gia] = [m for m in messages if m["To"] == "gia@globex.example"]
    assert "Jobs:\r\n  none" in to_gia.get_payload()
    assert set(OutboundEmail.objects.filter(dedupe_key__startswith="digest:").values_list("status", flat=True)) == {
        "sent"
    }
    assert OutboundEmail.objects.get(to_email="ada@acme.example").dedupe_key == f"digest:{week.label}:user:{ada.pk}"


def test_the_digest_summarises_the_full_iso_week_before_the_run():
    from datetime import UTC, datetime

    week = digest_week_for(at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # a Monday

    assert week.label == "2026-W47"
    assert (week.start, week.end) == (
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert digest_week_for(at=datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == week  # a re-run later that week
    assert digest_week_for(at=datetime(2027, 1, 4, 9, 0, tzinfo=UTC)).label == "2026-W53"
