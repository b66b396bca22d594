"""The standard periodic schedules, created by `manage.py setup_periodic_tasks` and then owned by the admin."""

from dataclasses import dataclass

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
        when=Every(seconds=10),
        description="Publish jobs accepted while the broker was unreachable.",
    ),
]


@transaction.atomic
def periodic_tasks_setup() -> list[str]:
    """Create the standard schedules that are missing; return their names. Existing ones are left as edited."""
    created = []
    for standard in STANDARD_SCHEDULES:
        if PeriodicTask.objects.filter(name=standard.name).exists():
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
