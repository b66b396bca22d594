"""Schedules stay in UTC across a daylight-saving change; the times people read move with their zone."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from notifications.models import OutboundEmail
from notifications.services import weekly_digest_send
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

# Europe/Berlin leaves summer time on Sunday 2026-10-25: UTC+2 (CEST) before, UTC+1 (CET) after.
MONDAY_BEFORE = datetime(2026, 10, 19, 9, 0, tzinfo=UTC)
MONDAY_AFTER = datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_the_digest_crontab_fires_at_0900_utc_on_the_monday_after_the_switch():
    call_command("setup_periodic_tasks")
    schedule = PeriodicTask.objects.get(name="send-weekly-digest").schedule  # what beat evaluates

    def is_due(now: datetime) -> bool:
        schedule.nowfun = lambda: now
        return schedule.is_due(MONDAY_BEFORE)[0]

    assert not is_due(MONDAY_AFTER - timedelta(hours=1))  # 09:00 Berlin time would be 08:00 UTC
    assert not is_due(MONDAY_AFTER - timedelta(seconds=1))
    assert is_due(MONDAY_AFTER)
    schedule.nowfun = lambda: MONDAY_BEFORE
    assert MONDAY_BEFORE + schedule.remaining_estimate(MONDAY_BEFORE) == MONDAY_AFTER  # a full 168 h later


def test_the_digest_shows_local_times_that_shift_by_an_hour(settings):
    settings.DIGEST_DISPLAY_TIMEZONE = "Europe/Berlin"
    call_command("setup_periodic_tasks")
    UserFactory(tenant=TenantFactory(name="Acme"), email="ada@acme.example")

    weekly_digest_send(at=MONDAY_BEFORE)
    weekly_digest_send(at=MONDAY_AFTER)

    before, after = OutboundEmail.objects.order_by("created_at")
    assert "Sent Monday 19 October 2026 at 11:00 CEST (Europe/Berlin)." in before.body
    assert "Next digest: Monday 26 October 2026 at 10:00 CET (Europe/Berlin)." in before.body
    assert "Sent Monday 26 October 2026 at 10:00 CET (Europe/Berlin)." in after.body
    assert "Next digest: Monday 2 November 2026 at 10:00 CET (Europe/Berlin)." in after.body


def test_the_next_digest_time_follows_the_admins_edit(settings):
    settings.DIGEST_DISPLAY_TIMEZONE = "Europe/Berlin"
    call_command("setup_periodic_tasks")
    digest = PeriodicTask.objects.get(name="send-weekly-digest")
    digest.crontab.hour = "6"
    digest.crontab.save()
    UserFactory(tenant=TenantFactory(name="Acme"))

    weekly_digest_send(at=MONDAY_BEFORE)

    assert "Next digest: Monday 26 October 2026 at 07:00 CET" in OutboundEmail.objects.get().body
