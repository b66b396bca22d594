"""Tenant-scoped reads: reports themselves, and the data each report type shows."""

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from celery import states
from django.db import models
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from jobs.models import Job
from jobs.selectors import job_state, job_status
from notifications.models import OutboundEmail
from reports.models import Report
from webhooks.selectors import webhook_events_processed_per_day

logger = logging.getLogger(__name__)

USER_CHUNK = 500  # rows fetched per round trip, and how often gathering reports progress


def report_list(*, tenant_id: int) -> QuerySet[Report]:
    return Report.objects.filter(tenant_id=tenant_id).select_related("job__result")


def report_get(*, tenant_id: int, report_id: int) -> Report | None:
    """The tenant's report, or None when it does not exist or belongs to another tenant."""
    return report_list(tenant_id=tenant_id).filter(pk=report_id).first()


def report_state(*, report: Report) -> tuple[str, str]:
    """The report's status and error as users should see them.

    A worker killed by the hard time limit, or a job canceled before it started, never gets to update the row;
    its job's state tells the truth then.
    """
    if report.status in (Report.Status.PENDING, Report.Status.GENERATING) and report.job is not None:
        state = job_state(job=report.job)
        if state in (states.FAILURE, states.REVOKED):
            return Report.Status.FAILED, job_status(job=report.job)["error"] or "The job stopped."
    return report.status, report.error


# --- users ------------------------------------------------------------------------------------------------------------

USER_COLUMNS = ("id", "email", "first_name", "last_name", "is_active", "is_staff", "date_joined", "last_login")


def users_count(*, tenant_id: int) -> int:
    return User.objects.filter(tenant_id=tenant_id).count()


def users_rows(*, tenant_id: int) -> Iterator[dict]:
    """Every user of the tenant, as plain dicts, by email; fetched in chunks so thousands stay cheap."""
    queryset = User.objects.filter(tenant_id=tenant_id).order_by("email").values(*USER_COLUMNS)
    yield from queryset.iterator(chunk_size=USER_CHUNK)


# --- activity ---------------------------------------------------------------------------------------------------------


@dataclass
class DayActivity:
    day: date
    jobs_succeeded: int = 0
    jobs_failed: int = 0
    jobs_other: int = 0  # queued, running, retrying or canceled
    emails_sent: int = 0
    emails_failed: int = 0
    webhooks: int = 0

    @property
    def jobs_total(self) -> int:
        return self.jobs_succeeded + self.jobs_failed + self.jobs_other


@dataclass
class Activity:
    since: date
    until: date
    days: list[DayActivity]
    jobs_by_kind: list[dict] = field(default_factory=list)


def activity_period(*, days: int, now: datetime | None = None) -> tuple[date, date]:
    today = timezone.localdate(now or timezone.now())
    return today - timedelta(days=days - 1), today


def activity_gather(*, tenant_id: int, days: int, step: Callable[[str], None] = lambda _: None) -> Activity:
    """Jobs by day and outcome, emails sent and webhooks processed for the tenant's last ``days`` days.

    ``step`` is called after each of the three queries, to report progress.
    """
    since, until = activity_period(days=days)
    by_day = {since + timedelta(days=n): DayActivity(day=since + timedelta(days=n)) for n in range(days)}
    start = timezone.make_aware(datetime.combine(since, datetime.min.time()))

    kinds: dict[str, Counter] = defaultdict(Counter)
    jobs = (
        Job.objects.filter(tenant_id=tenant_id, accepted_at__gte=start)
        .annotate(day=TruncDate("accepted_at"), canceled=models.Q(canceled_at__isnull=False))
        .values("day", "kind", "result__status", "canceled")
        .annotate(n=Count("id"))
    )
    for row in jobs:
        outcome = _job_outcome(row["result__status"], canceled=row["canceled"])
        day = by_day.get(row["day"])
        if day is None:
            continue
        setattr(day, f"jobs_{outcome}", getattr(day, f"jobs_{outcome}") + row["n"])
        kinds[row["kind"]][outcome] += row["n"]
    step("jobs")

    emails = (
        OutboundEmail.objects.filter(tenant_id=tenant_id, created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "status")
        .annotate(n=Count("id"))
    )
    for row in emails:
        day = by_day.get(row["day"])
        if day is not None and row["status"] == OutboundEmail.Status.SENT:
            day.emails_sent += row["n"]
        elif day is not None and row["status"] == OutboundEmail.Status.FAILED:
            day.emails_failed += row["n"]
    step("emails")

    for day, count in webhook_events_processed_per_day(tenant_id=tenant_id, since=start).items():
        if day in by_day:
            by_day[day].webhooks += count
    step("webhooks")

    jobs_by_kind = sorted(
        (
            {"kind": kind, **{k: c[k] for k in ("succeeded", "failed", "other")}, "total": sum(c.values())}
            for kind, c in kinds.items()
        ),
        key=lambda row: (-row["total"], row["kind"]),
    )
    return Activity(since=since, until=until, days=list(by_day.values()), jobs_by_kind=jobs_by_kind)


def _job_outcome(status: str | None, *, canceled: bool) -> str:
    if canceled:
        return "other"
    if status == states.SUCCESS:
        return "succeeded"
    if status == states.FAILURE:
        return "failed"
    return "other"
