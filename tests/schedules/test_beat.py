"""A real beat (DatabaseScheduler) and a real worker: an edit made in the admin takes effect without a restart."""

import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from notifications.models import OutboundEmail
from tests.conftest import PROJECT_DIR, subprocess_env, wait_until
from tests.factories import TenantFactory, UserFactory
from tests.schedules.conftest import form_data

pytestmark = pytest.mark.django_db(transaction=True)

RENEWALS_TASK = "notifications.check_subscription_renewals"


def test_an_admin_edit_to_a_schedule_reaches_a_running_beat(worker_process, superuser, tmp_path):
    # given a tenant whose subscription renews today, the standard schedules, a worker and a running beat
    tenant = TenantFactory(name="Renewing", subscription_current_period_end=timezone.now().date())
    UserFactory(tenant=tenant, email="owner@renewing.example", is_staff=True)
    call_command("setup_periodic_tasks")
    every_two_seconds = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    worker = worker_process().start()
    beat_log = tmp_path / "beat.log"
    with beat_log.open("wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
             "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--max-interval", "1"],
            cwd=PROJECT_DIR, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    logs = lambda: f"--- beat ---\n{beat_log.read_text()}\n--- worker ---\n{worker.log()}"  # noqa: E731
    try:
        wait_until(lambda: b"beat: Starting" in beat_log.read_bytes(), 30, "beat did not start", logs)
        time.sleep(2)
        # the renewal check is daily at 00:00 UTC: nothing has run yet
        assert not TaskResult.objects.filter(task_name=RENEWALS_TASK).exists(), logs()

        # when a superuser changes it, in the admin, to every two seconds
        client = Client()
        client.force_login(superuser)
        renewals = PeriodicTask.objects.get(name="check-subscription-renewals")
        url = f"/admin/django_celery_beat/periodictask/{renewals.pk}/change/"
        data = form_data(client, url)
        data.update(crontab="", interval=str(every_two_seconds.pk))
        assert client.post(url, data).status_code == 302

        # then the same beat runs it on the new schedule: the reminder is made and sent...
        email = wait_until(
            lambda: OutboundEmail.objects.filter(to_email="owner@renewing.example", status="sent").first(),
            40, "no renewal reminder was sent", logs,
        )  # fmt: skip
        assert email.subject == "Your Renewing subscription renews today"
        # ...and keeps running every two seconds without making a second reminder the same day
        wait_until(
            lambda: TaskResult.objects.filter(task_name=RENEWALS_TASK, status="SUCCESS").count() >= 3,
            40, "the schedule did not keep running", logs,
        )  # fmt: skip
        assert OutboundEmail.objects.filter(to_email="owner@renewing.example").count() == 1
        assert "Schedule changed" in beat_log.read_text()
    finally:
        beat.terminate()
        try:
            beat.wait(timeout=15)
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait(timeout=5)
