from django.core.management.base import BaseCommand

from jobs.schedules import STANDARD_SCHEDULES, periodic_tasks_setup


class Command(BaseCommand):
    help = "Create the standard periodic schedules if missing; never overwrite what an admin edited."

    def handle(self, *args, **options) -> None:
        created = set(periodic_tasks_setup())
        for standard in STANDARD_SCHEDULES:
            self.stdout.write(f"{'created' if standard.name in created else 'kept   '}  {standard.name}")
