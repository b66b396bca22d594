"""setup_periodic_tasks: the standard schedules, in UTC, created once and then left as the admin edits them."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db

STANDARD = {
    "publish-unpublished-jobs": ("jobs.publish_unpublished", None),
    "recover-stranded-jobs": ("jobs.recover_stranded", None),
    "check-subscription-renewals": ("notifications.check_subscription_renewals", ("0", "0", "*")),
    "send-weekly-digest": ("notifications.send_weekly_digest", ("0", "9", "1")),
    "cleanup-old-logs": ("jobs.cleanup_old_logs", ("0", "*/6", "*")),
}


def test_it_creates_the_standard_schedules_in_utc_for_registered_tasks(capsys):
    call_command("setup_periodic_tasks")

    celery_app.loader.import_default_modules()
    for name, (task, cron) in STANDARD.items():
        periodic = PeriodicTask.objects.get(name=name)
        assert periodic.task == task and periodic.enabled
        assert task in celery_app.tasks  # a worker knows the name beat will send
        if cron:
            c = periodic.crontab
            assert (c.minute, c.hour, c.day_of_week, c.day_of_month, c.month_of_year) == (*cron, "*", "*")
            assert str(c.timezone) == "UTC"
    output = capsys.readouterr().out.splitlines()
    assert all(f"created  {name}" in output for name in STANDARD)


def test_running_it_again_keeps_what_an_admin_edited(capsys):
    call_command("setup_periodic_tasks")
    digest = PeriodicTask.objects.get(name="send-weekly-digest")
    digest.crontab = CrontabSchedule.objects.create(minute="30", hour="7", day_of_week="2", timezone="UTC")
    digest.enabled = False
    digest.save()
    PeriodicTask.objects.get(name="cleanup-old-logs").delete()

    call_command("setup_periodic_tasks")

    digest.refresh_from_db()
    assert (digest.crontab.hour, digest.crontab.minute, digest.enabled) == ("7", "30", False)
    assert PeriodicTask.objects.filter(name="cleanup-old-logs").exists()  # a missing one comes back
    assert PeriodicTask.objects.filter(name__in=STANDARD).count() == len(STANDARD)
    output = capsys.readouterr().out.splitlines()
    assert "kept     send-weekly-digest" in output and "created  cleanup-old-logs" in output


def test_a_schedule_renamed_in_the_admin_is_kept_not_made_again(capsys):
    call_command("setup_periodic_tasks")
    renewals = PeriodicTask.objects.get(name="check-subscription-renewals")
    renewals.name = "Renewal reminders (midnight)"
    renewals.save()

    call_command("setup_periodic_tasks")

    assert PeriodicTask.objects.filter(task=renewals.task).count() == 1  # not a second row running it again
    assert "kept     check-subscription-renewals" in capsys.readouterr().out.splitlines()


def test_a_one_off_run_of_a_standard_task_does_not_stand_in_for_its_schedule(capsys):
    call_command("setup_periodic_tasks")
    renewals = PeriodicTask.objects.get(name="check-subscription-renewals")
    PeriodicTask.objects.create(name="renewals once more", task=renewals.task, one_off=True, crontab=renewals.crontab)
    renewals.delete()

    call_command("setup_periodic_tasks")

    assert PeriodicTask.objects.filter(name="check-subscription-renewals", one_off=False).exists()
