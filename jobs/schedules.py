"""The standard periodic schedules, created by `manage.py setup_periodic_tasks` and then owned by the admin.

Times are UTC. Beat runs them with django-celery-beat's DatabaseScheduler, which re-reads the table whenever a
schedule is saved (``PeriodicTasks.changed``), so an admin's edit takes effect without restarting beat.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class Crontab:
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclass(frozen=True)
class Every:
    seconds: int


@dataclass(frozen=True)
class StandardSchedule:
    name: str
    task: str
    when: Crontab | Every
    description: str


STANDARD_SCHEDULES: list[StandardSchedule] = [
    StandardSchedule(
        name="publish-unpublished-jobs",
        task="jobs.publish_unpublished",
        when=Every(seconds=settings.JOBS_RELAY_INTERVAL_SECONDS),
        description="Publish jobs accepted while the broker was unreachable.",
    ),
    StandardSchedule(
        name="recover-stranded-jobs",
        task="jobs.recover_stranded",
        when=Every(seconds=settings.JOBS_SWEEP_INTERVAL_SECONDS),
        description="Republish accepted jobs that no queue and no live worker holds (a dead worker, a Redis reset).",
    ),
    StandardSchedule(
        name="check-subscription-renewals",
        task="notifications.check_subscription_renewals",
        when=Crontab(minute="0", hour="0"),
        description="Remind each tenant's admins of a subscription that renews today (UTC).",
    ),
    StandardSchedule(
        name="send-weekly-digest",
        task="notifications.send_weekly_digest",
        when=Crontab(minute="0", hour="9", day_of_week="1"),
        description="Email every active user a summary of their tenant's last week.",
    ),
    StandardSchedule(
        name="cleanup-old-logs",
        task="jobs.cleanup_old_logs",
        when=Crontab(minute="0", hour="*/6"),
        description="Prune finished jobs, task results, emails, webhook events and report files past retention.",
    ),
]


@transaction.atomic
def periodic_tasks_setup() -> list[str]:
    """Create the standard schedules that are missing; return their names. Existing ones are left as edited, renamed
    ones included."""
    created = []
    for standard in STANDARD_SCHEDULES:
        if standard_schedule_row(standard) is not None:
            continue
        schedule = {}
        if isinstance(standard.when, Every):
            schedule["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=standard.when.seconds, period=IntervalSchedule.SECONDS
            )
        else:
            schedule["crontab"], _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **vars(standard.when))
        PeriodicTask.objects.create(
            name=standard.name, task=standard.task, description=standard.description, **schedule
        )
        created.append(standard.name)
    return created


def standard_schedule(name: str) -> StandardSchedule:
    return next(standard for standard in STANDARD_SCHEDULES if standard.name == name)


def standard_schedule_row(standard: StandardSchedule) -> PeriodicTask | None:
    """The row holding a standard schedule: the one of its name or, renamed in the admin, the first repeating row of
    its task on the same kind of schedule (so that setting up again does not make a second one that runs the task
    twice; a one-off run or a schedule of another kind is not it)."""
    rows = PeriodicTask.objects.select_related("crontab")
    named = rows.filter(name=standard.name).first()
    if named is not None:
        return named
    kind = {"interval__isnull": False} if isinstance(standard.when, Every) else {"crontab__isnull": False}
    return rows.filter(task=standard.task, one_off=False, clocked__isnull=True, **kind).order_by("pk").first()


def schedule_next_run(*, name: str, after: datetime) -> datetime | None:
    """When the named crontab schedule fires next after ``after`` (aware), as beat would compute it.

    Reads the schedule as the admin left it, falling back to the standard one; None for a disabled or
    non-crontab schedule.
    """
    task = standard_schedule_row(standard_schedule(name))
    if task is not None:
        if not task.enabled or task.crontab is None:
            return None
        schedule = task.crontab.schedule
    else:
        when = standard_schedule(name).when
        if not isinstance(when, Crontab):
            return None
        schedule = CrontabSchedule(timezone="UTC", **vars(when)).schedule
    schedule.nowfun = lambda: after.astimezone(schedule.tz)
    return after + schedule.remaining_estimate(after)
