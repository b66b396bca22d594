from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs.ops import failures_since, queue_depths, workers_inspect
from jobs.services import BROKER_ERRORS


def table(headers: list[str], rows: list[list]) -> str:
    cells = [headers, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Workers online, queue depths, running/reserved/scheduled tasks, and failures in the last 24 hours."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for workers to answer")

    def handle(self, *args, timeout: float, **options) -> None:
        try:
            workers = workers_inspect(timeout=timeout)
            depths = queue_depths()
        except BROKER_ERRORS as exc:
            raise CommandError(f"The broker does not answer: {exc}") from exc

        self.stdout.write(self.style.MIGRATE_HEADING(f"Workers online: {len(workers)}"))
        if workers:
            rows = [[w.name, len(w.active), len(w.reserved), len(w.scheduled)] for w in workers]
            self.stdout.write(table(["worker", "running", "reserved", "scheduled"], rows))
            tasks = [
                [what, w.name, task.get("name", "?"), task.get("id", "?")]
                for w in workers
                for what, listed in (("running", w.active), ("reserved", w.reserved), ("scheduled", w.scheduled))
                for task in listed
            ]
            if tasks:
                self.stdout.write("")
                self.stdout.write(table(["state", "worker", "task", "task id"], tasks))
        else:
            self.stdout.write(self.style.WARNING("No worker answered; queued work waits until one starts."))

        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("Queue depths (messages waiting)"))
        self.stdout.write(table(["queue", "waiting"], [[name, depth] for name, depth in depths.items()]))

        self.stdout.write("")
        failures = failures_since(since=timezone.now() - timedelta(hours=24))
        self.stdout.write(self.style.MIGRATE_HEADING(f"Failures in the last 24 h: {sum(n for _, n in failures)}"))
        if failures:
            self.stdout.write(table(["kind", "failed"], failures))
