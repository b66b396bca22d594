import logging
from functools import partial

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from jobs.models import Job
from jobs.ops import duration_parse, failed_jobs
from jobs.retry import JobNotRetryable, job_retry, job_retry_dry_run

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Re-enqueue failed jobs as new jobs (a failed email is put back in the queue). "
        "Jobs already retried, or that did not fail, are skipped, so running it twice retries nothing twice."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", help="only jobs of this kind, e.g. send_email")
        parser.add_argument("--since", default="24h", help="failed within this long, e.g. 90m, 24h, 7d (default 24h)")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list what a run would retry and skip (and why); change nothing. It runs the retry in a transaction "
            "it rolls back, so it needs write access and briefly locks each job's rows",
        )

    def handle(self, *args, kind: str | None, since: str, dry_run: bool, **options) -> None:
        try:
            cutoff = timezone.now() - duration_parse(since)
        except (ValueError, OverflowError) as exc:  # OverflowError: before the year 1
            raise CommandError(f"--since: {exc}") from exc
        jobs = list(failed_jobs(since=cutoff, kind=kind))
        what = f"failed {kind or ''} job(s) in the last {since}".replace("  ", " ")
        if not jobs:
            self.stdout.write(f"No {what}.")
            # A typo, most likely, or a kind whose jobs were all pruned: say which kinds there are. Not an error: a
            # scheduled run for a rare kind would fail each time retention had emptied it.
            if kind and not Job.objects.filter(kind=kind).exists():
                kinds = ", ".join(Job.objects.order_by("kind").values_list("kind", flat=True).distinct()) or "none yet"
                self.stderr.write(f"No job of kind {kind!r} is recorded. Kinds recorded: {kinds}.")
            return
        # A dry run takes the real run's path, each retry rolled back, so that it reports exactly what a run would do.
        retry = job_retry_dry_run if dry_run else partial(job_retry, by_user_id=None)
        retried, skipped = [], []
        for job in tqdm(jobs, desc="checking" if dry_run else "retrying", unit="job", file=self.stderr, disable=None):
            try:
                new_job = retry(job=job)
            except JobNotRetryable as exc:
                skipped.append((job, str(exc)))
                continue
            retried.append((job, new_job))
        if dry_run:
            for job, _ in retried:
                self.stdout.write(f"would retry  {job.task_id}  {job.kind}  tenant {job.tenant_id}")
            for job, reason in skipped:
                self.stdout.write(f"would skip  {job.task_id}  {job.kind}: {reason}")
            self.stdout.write(
                f"{len(retried)} would be retried, {len(skipped)} skipped, of {len(jobs)} {what}; "
                "nothing changed (--dry-run)."
            )
            return
        for job, new_job in retried:
            self.stdout.write(f"retried  {job.task_id}  {job.kind}  ->  {new_job.task_id}")
        for job, reason in skipped:
            self.stdout.write(f"skipped  {job.task_id}  {job.kind}: {reason}")
        self.stdout.write(self.style.SUCCESS(f"{len(retried)} retried, {len(skipped)} skipped, of {len(jobs)} {what}."))
