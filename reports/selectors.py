"""Tenant-scoped reads: reports themselves, and the data each report type shows."""

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from celery import states
from django.apps import apps
from django.db import DatabaseError, models, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from jobs.models import Job
from jobs.selectors import job_state, job_status
from notifications.models import OutboundEmail
from reports.models import Report

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
    webhooks_source: str = ""  # where webhook counts came from, said in the report


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

    source = _webhook_counts(tenant_id=tenant_id, start=start, by_day=by_day)
    step("webhooks")

    jobs_by_kind = sorted(
        (
            {"kind": kind, **{k: c[k] for k in ("succeeded", "failed", "other")}, "total": sum(c.values())}
            for kind, c in kinds.items()
        ),
        key=lambda row: (-row["total"], row["kind"]),
    )
    return Activity(since=since, until=until, days=list(by_day.values()), jobs_by_kind=jobs_by_kind,
                    webhooks_source=source)  # fmt: skip


def _job_outcome(status: str | None, *, canceled: bool) -> str:
    if canceled:
        return "other"
    if status == states.SUCCESS:
        return "succeeded"
    if status == states.FAILURE:
        return "failed"
    return "other"


def _webhook_counts(*, tenant_id: int, start: datetime, by_day: dict[date, DayActivity]) -> str:
    """Count processed webhook events per day; say where the numbers came from.

    The webhooks app is optional here: when it has a model that records the tenant and a timestamp, its rows are
    counted; otherwise the tenant's webhook-processing jobs stand in for them.
    """
    model, time_field = _webhook_event_model()
    if model is not None:
        try:
            with transaction.atomic():  # a savepoint: a missing table must not poison the caller's transaction
                rows = list(
                    model.objects.filter(tenant_id=tenant_id, **{f"{time_field}__gte": start})
                    .annotate(day=TruncDate(time_field))
                    .values("day")
                    .annotate(n=Count("pk"))
                )
            source = f"{model._meta.verbose_name_plural} ({time_field.replace('_', ' ')})"
        except DatabaseError:
            logger.warning("Webhook events of tenant %s unreadable; counting webhook jobs instead", tenant_id)
            model = None
    if model is None:
        rows = list(
            Job.objects.filter(tenant_id=tenant_id, accepted_at__gte=start, result__status=states.SUCCESS)
            .filter(models.Q(kind__startswith="webhook") | models.Q(kind__startswith="process_webhook"))
            .annotate(day=TruncDate("accepted_at"))
            .values("day")
            .annotate(n=Count("pk"))
        )
        source = "webhook jobs that succeeded"
    for row in rows:
        day = by_day.get(row["day"])
        if day is not None:
            day.webhooks += row["n"]
    return source


WEBHOOK_TIME_FIELDS = ("processed_at", "received_at", "created_at")


def _webhook_event_model() -> tuple[type[models.Model] | None, str]:
    """The webhooks app's event model when it has a tenant and a timestamp; (None, "") otherwise."""
    try:
        config = apps.get_app_config("webhooks")
    except LookupError:
        return None, ""
    candidates = []
    for model in config.get_models():
        names = {f.name: f for f in model._meta.get_fields() if getattr(f, "concrete", False)}
        tenant = names.get("tenant")
        if tenant is None or not tenant.is_relation or tenant.related_model._meta.label != "accounts.Tenant":
            continue
        candidates.append((model, names))
    # The most telling timestamp wins: an event model's processed_at over, say, a source's created_at.
    for time_field in WEBHOOK_TIME_FIELDS:
        for model, names in candidates:
            if isinstance(names.get(time_field), models.DateTimeField):
                return model, time_field
    return None, ""
