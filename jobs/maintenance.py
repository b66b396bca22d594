"""cleanup_old_logs: prune what is past its retention, in small batches, and never anything unfinished.

Other apps add their own pruning with ``register_pruner`` (from their ``AppConfig.ready``)::

    def report_files_prune(*, now: datetime, batch_size: int) -> int: ...   # returns how many it removed

    register_pruner("report files", report_files_prune)

A pruner must delete only finished things past its own retention, in batches of ``batch_size`` with a short
transaction each (``delete_in_batches`` does exactly that for a queryset), and be safe to run twice.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.conf import jobs_setting
from jobs.models import IdempotencyKey, Job
from jobs.selectors import FINAL_STATES

logger = logging.getLogger(__name__)

Pruner = Callable[..., int]  # (*, now: datetime, batch_size: int) -> rows removed

_pruners: dict[str, Pruner] = {}


def register_pruner(label: str, pruner: Pruner) -> None:
    """Add an app's pruning to cleanup_old_logs; registering the same label again replaces it."""
    _pruners[label] = pruner


def delete_in_batches(queryset: QuerySet, *, batch_size: int) -> int:
    """Delete the rows of ``queryset`` in primary-key order, ``batch_size`` per short transaction.

    Each batch re-applies the queryset's conditions when it deletes, so a row that changed since it was read (an
    email re-queued meanwhile) stays. Locks last one batch; an interrupted run leaves nothing half done.
    """
    model = queryset.model
    label = model._meta.label
    deleted = 0
    last_pk = None
    while True:
        page = queryset.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        pks = list(page.values_list("pk", flat=True)[:batch_size])
        if not pks:
            return deleted
        with transaction.atomic():
            _, per_model = queryset.filter(pk__in=pks).delete()
        deleted += per_model.get(label, 0)
        last_pk = pks[-1]


def emails_prune(*, now: datetime, batch_size: int) -> int:
    from notifications.models import OutboundEmail

    cutoff = now - timedelta(days=jobs_setting("EMAIL_RETENTION_DAYS"))
    done = [OutboundEmail.Status.SENT, OutboundEmail.Status.FAILED]
    return delete_in_batches(
        OutboundEmail.objects.filter(status__in=done, created_at__lt=cutoff), batch_size=batch_size
    )


def jobs_prune(*, now: datetime, batch_size: int) -> int:
    """Jobs that finished before the cutoff, with their results. A job still queued or running has no final result
    and is kept however old it is."""
    cutoff = now - timedelta(days=jobs_setting("JOBS_RETENTION_DAYS"))
    finished = Job.objects.filter(result__status__in=FINAL_STATES, result__date_done__lt=cutoff)
    deleted = 0
    last_pk = None
    while True:
        page = finished.order_by("pk") if last_pk is None else finished.filter(pk__gt=last_pk).order_by("pk")
        batch = list(page.values_list("pk", "task_id")[:batch_size])
        if not batch:
            return deleted
        pks, task_ids = zip(*batch, strict=True)
        with transaction.atomic():
            _, per_model = finished.filter(pk__in=pks).delete()
            TaskResult.objects.filter(task_id__in=task_ids, status__in=FINAL_STATES).delete()
        deleted += per_model.get(Job._meta.label, 0)
        last_pk = pks[-1]


def task_results_prune(*, now: datetime, batch_size: int) -> int:
    """Final results of tasks without a Job (beat's system tasks); a job's result lives as long as its job."""
    cutoff = now - timedelta(days=jobs_setting("TASK_RESULT_RETENTION_DAYS"))
    orphans = TaskResult.objects.filter(status__in=FINAL_STATES, date_done__lt=cutoff).exclude(
        Exists(Job.objects.filter(task_id=OuterRef("task_id")))
    )
    return delete_in_batches(orphans, batch_size=batch_size)


def idempotency_keys_prune(*, now: datetime, batch_size: int) -> int:
    cutoff = now - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return delete_in_batches(IdempotencyKey.objects.filter(created_at__lt=cutoff), batch_size=batch_size)


register_pruner("emails", emails_prune)
register_pruner("jobs", jobs_prune)
register_pruner("task results", task_results_prune)
register_pruner("idempotency keys", idempotency_keys_prune)


def old_logs_cleanup(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
    """Run every pruner; return how many rows each removed. One failing pruner does not stop the others."""
    now = now or timezone.now()
    batch_size = batch_size or jobs_setting("CLEANUP_BATCH_SIZE")
    removed: dict[str, int] = {}
    failed: list[str] = []
    for label, pruner in list(_pruners.items()):
        try:
            removed[label] = pruner(now=now, batch_size=batch_size)
        except Exception:  # noqa: BLE001 - logged with its traceback; the remaining pruners still run
            logger.exception("Pruning %s failed", label)
            failed.append(label)
    logger.info("cleanup_old_logs removed %s", ", ".join(f"{n} {label}" for label, n in removed.items()) or "nothing")
    if failed:
        raise PruningFailed(failed)
    return removed


class PruningFailed(Exception):
    def __init__(self, labels: list[str]) -> None:
        super().__init__(f"Pruning failed for: {', '.join(labels)} (see the log)")
