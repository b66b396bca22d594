"""The periodic-task admin: superusers edit, staff look (and edit what they are permitted), nothing invalid is saved."""

import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from accounts.models import User
from tests.schedules.conftest import form_data

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/django_celery_beat/periodictask/add/"
LIST_URL = "/admin/django_celery_beat/periodictask/"


def change_url(task: PeriodicTask) -> str:
    return f"/admin/django_celery_beat/periodictask/{task.pk}/change/"


@pytest.fixture
def every_minute(db) -> IntervalSchedule:
    return IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)


def new_task_form(admin_client, every_minute, **fields) -> dict:
    data = form_data(admin_client, ADD_URL)
    data.update(name="renewals-again", task="notifications.check_subscription_renewals", interval=str(every_minute.pk))
    data.update(fields)
    return data


def test_staff_who_are_not_superusers_may_look_but_not_add_or_change(staff_client, every_minute):
    call_command("setup_periodic_tasks")
    digest = PeriodicTask.objects.get(name="send-weekly-digest")

    listing = staff_client.get(LIST_URL)
    assert listing.status_code == 200
    assert b"send-weekly-digest" in listing.content
    assert ADD_URL.encode() not in listing.content  # no add button
    assert staff_client.get(ADD_URL).status_code == 403
    refused = staff_client.post(ADD_URL, {"name": "x", "task": "jobs.cleanup_old_logs", "interval": every_minute.pk})
    assert refused.status_code == 403
    assert staff_client.get(change_url(digest)).status_code == 200  # a read-only view
    assert staff_client.post(change_url(digest), {"name": "hijacked"}).status_code == 403
    disabled = staff_client.post(LIST_URL, {"action": "disable_tasks", "_selected_action": [digest.pk]})
    assert disabled.status_code in (200, 302)

    assert not PeriodicTask.objects.filter(name__in=["x", "hijacked"]).exists()
    digest.refresh_from_db()
    assert digest.name == "send-weekly-digest" and digest.enabled


def test_staff_granted_the_permission_by_a_superuser_may_change_schedules(staff_client, every_minute):
    # a superuser makes a group that may change periodic tasks, and puts the staff member in it
    call_command("setup_periodic_tasks")
    editors = Group.objects.create(name="Schedule editors")
    editors.permissions.add(Permission.objects.get(codename="change_periodictask"))
    User.objects.get(email="staff@example.com").groups.add(editors)
    digest = PeriodicTask.objects.get(name="send-weekly-digest")
    data = form_data(staff_client, change_url(digest))
    data.update(crontab="", interval=str(every_minute.pk))

    response = staff_client.post(change_url(digest), data)

    assert response.status_code == 302
    digest.refresh_from_db()
    assert digest.interval == every_minute
    assert staff_client.get(ADD_URL).status_code == 403  # changing was granted, adding was not


def test_a_superuser_adds_a_task_and_the_admin_log_records_it(admin_client, superuser, every_minute):
    response = admin_client.post(ADD_URL, new_task_form(admin_client, every_minute, kwargs='{"day": "2026-11-23"}'))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    task = PeriodicTask.objects.get(name="renewals-again")
    assert (task.task, json.loads(task.kwargs), task.interval) == (
        "notifications.check_subscription_renewals",
        {"day": "2026-11-23"},
        every_minute,
    )
    assert LogEntry.objects.filter(user=superuser, object_id=str(task.pk)).exists()


def test_an_unknown_task_name_is_refused_with_a_form_error(admin_client, every_minute):
    response = admin_client.post(ADD_URL, new_task_form(admin_client, every_minute, task="os.system"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "task" in errors and "not one of the available choices" in errors["task"][0]
    assert not PeriodicTask.objects.filter(name="renewals-again").exists()


def test_celery_internal_tasks_are_not_offered(admin_client, every_minute):
    data = form_data(admin_client, ADD_URL)
    page = admin_client.get(ADD_URL).content.decode()

    assert 'value="jobs.cleanup_old_logs"' in page and 'value="notifications.send_weekly_digest"' in page
    assert "celery.backend_cleanup" not in page
    assert "regtask" not in data  # one task field, no free-text alternative


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("args", "[1, 2", "Not valid JSON"),
        ("args", '{"a": 1}', "Must be a JSON list"),
        ("kwargs", "{day: 1}", "Not valid JSON"),
        ("kwargs", "[1]", "Must be a JSON object"),
        ("kwargs", '{"a": NaN}', "NaN is not a JSON value"),
        ("args", "[Infinity]", "Infinity is not a JSON value"),
        ("kwargs", '{"a": 1e400}', "Out of range float values are not JSON compliant"),
        # beat would skip the schedule without a word while the admin shows it enabled
        ("headers", "not json", "Not valid JSON"),
        ("headers", '["x"]', "Must be a JSON object"),
    ],
)
def test_args_kwargs_and_headers_must_be_json_of_the_right_shape(admin_client, every_minute, field, value, message):
    response = admin_client.post(ADD_URL, new_task_form(admin_client, every_minute, **{field: value}))

    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field][0]
    assert not PeriodicTask.objects.filter(name="renewals-again").exists()


def test_a_superuser_edit_marks_the_schedule_changed_for_beat_and_is_logged(admin_client, superuser, every_minute):
    call_command("setup_periodic_tasks")
    renewals = PeriodicTask.objects.get(name="check-subscription-renewals")
    before = PeriodicTasks.last_change()
    data = form_data(admin_client, change_url(renewals))
    data.update(crontab="", interval=str(every_minute.pk))

    response = admin_client.post(change_url(renewals), data)

    assert response.status_code == 302
    renewals.refresh_from_db()
    assert renewals.interval == every_minute and renewals.crontab is None
    assert PeriodicTasks.last_change() > before  # what DatabaseScheduler polls to reload without a restart
    entry = LogEntry.objects.get(user=superuser, object_id=str(renewals.pk), action_flag=CHANGE)
    assert "Interval Schedule" in entry.get_change_message() or "interval" in entry.get_change_message().lower()


def test_list_actions_are_logged_per_task(admin_client, superuser):
    call_command("setup_periodic_tasks")
    digest = PeriodicTask.objects.get(name="send-weekly-digest")

    admin_client.post(LIST_URL, {"action": "disable_tasks", "_selected_action": [digest.pk]})

    digest.refresh_from_db()
    assert not digest.enabled
    assert LogEntry.objects.get(user=superuser, object_id=str(digest.pk)).get_change_message() == "Disabled."
