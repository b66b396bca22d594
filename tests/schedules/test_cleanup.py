"""cleanup_old_logs removes exactly what is past retention, in batches, and nothing unfinished."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import maintenance
from jobs.models import IdempotencyKey, Job
from jobs.tasks import cleanup_old_logs
from notifications.models import OutboundEmail
from tests.factories import TenantFactory
from tests.schedules.conftest import finished_job

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)
OURS = ("emails", "jobs", "task results", "idempotency keys")  # other apps may register more


@pytest.fixture(autouse=True)
def retention(settings):
    settings.JOBS_RETENTION_DAYS = 30
    settings.TASK_RESULT_RETENTION_DAYS = 7
    settings.EMAIL_RETENTION_DAYS = 90
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 24
    settings.CLEANUP_BATCH_SIZE = 2  # several batches from a handful of rows


def system_result(task_id: str, status: str, done_ago: timedelta) -> TaskResult:
    TaskResult.objects.create(task_id=task_id, status=status, task_name="notifications.send_weekly_digest")
    TaskResult.objects.filter(task_id=task_id).update(date_done=timezone.now() - done_ago)
    return TaskResult.objects.get(task_id=task_id)


def email(tenant, status: str, age: timedelta) -> OutboundEmail:
    return OutboundEmail.objects.create(
        tenant=tenant, to_email="a@example.com", subject=status, body="x", status=status,
        created_at=timezone.now() - age,
    )  # fmt: skip


def test_only_rows_past_their_retention_go_and_unfinished_ones_stay(celery_worker):
    tenant = TenantFactory()
    days = timedelta(days=1)
    # jobs: finished just outside / just inside 30 days, and unfinished ones far older
    old_jobs = [finished_job(tenant=tenant, status=s, done_ago=30 * days + HOUR) for s in ("SUCCESS", "FAILURE")]
    old_jobs.append(finished_job(tenant=tenant, status="REVOKED", done_ago=31 * days, canceled_at=timezone.now()))
    recent_job = finished_job(tenant=tenant, status="SUCCESS", done_ago=30 * days - HOUR)
    running = finished_job(tenant=tenant, status="STARTED", done_ago=200 * days)
    retrying = finished_job(tenant=tenant, status="RETRY", done_ago=200 * days)
    never_ran = Job.objects.create(
        task_id="never-ran", tenant=tenant, kind="send_email", task_name="x", accepted_at=timezone.now() - 200 * days
    )
    # results of system tasks (no Job): 7 days
    old_result = system_result("system-old", "SUCCESS", 7 * days + HOUR)
    recent_result = system_result("system-recent", "FAILURE", 7 * days - HOUR)
    stuck_result = system_result("system-stuck", "STARTED", 100 * days)
    # emails: 90 days, queued ones never
    old_emails = [email(tenant, "sent", 90 * days + HOUR), email(tenant, "failed", 90 * days + HOUR)]
    recent_email = email(tenant, "sent", 90 * days - HOUR)
    queued_email = email(tenant, "queued", 365 * days)
    email_of_old_job = email(tenant, "sent", 40 * days)
    email_of_old_job.job_id = old_jobs[0].task_id
    email_of_old_job.save()
    # idempotency keys: 24 hours
    keys = {
        age: IdempotencyKey.objects.create(
            tenant=tenant,
            key=f"k{age}",
            request_path="/api/send-email/",
            response_status=202,
            response_body={},
            created_at=timezone.now() - timedelta(hours=age),
        )  # fmt: skip
        for age in (25, 23)
    }

    removed = cleanup_old_logs.delay().get(timeout=30)

    assert {label: removed[label] for label in OURS} == {
        "emails": 2,
        "jobs": 3,
        "task results": 1,
        "idempotency keys": 1,
    }
    assert set(Job.objects.values_list("task_id", flat=True)) == {
        recent_job.task_id, running.task_id, retrying.task_id, never_ran.task_id,
    }  # fmt: skip
    assert not TaskResult.objects.filter(task_id__in=[job.task_id for job in old_jobs]).exists()
    assert TaskResult.objects.filter(task_id__in=[running.task_id, retrying.task_id, recent_job.task_id]).count() == 3
    remaining_results = set(TaskResult.objects.values_list("task_id", flat=True))
    assert old_result.task_id not in remaining_results
    assert {recent_result.task_id, stuck_result.task_id} <= remaining_results
    assert set(OutboundEmail.objects.values_list("pk", flat=True)) == {
        recent_email.pk, queued_email.pk, email_of_old_job.pk,
    }  # fmt: skip
    email_of_old_job.refresh_from_db()
    assert email_of_old_job.job_id is None  # the email outlives its pruned job
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [keys[23].key]
    assert not OutboundEmail.objects.filter(pk__in=[e.pk for e in old_emails]).exists()

    # a second run finds nothing more
    again = cleanup_old_logs.delay().get(timeout=30)
    assert [again[label] for label in OURS] == [0, 0, 0, 0]


def test_apps_register_their_own_pruning_and_a_failing_one_does_not_stop_the_rest(db):
    seen = []

    def report_files_prune(*, now, batch_size):
        seen.append(batch_size)
        return 3

    def broken_prune(*, now, batch_size):
        raise RuntimeError("disk gone")

    registered = dict(maintenance._pruners)
    maintenance.register_pruner("report files", report_files_prune)
    maintenance.register_pruner("broken", broken_prune)
    try:
        with pytest.raises(maintenance.PruningFailed, match="broken"):
            maintenance.old_logs_cleanup()
        assert seen == [2]
    finally:
        maintenance._pruners.clear()
        maintenance._pruners.update(registered)  # the apps' own pruners, as before this test


def test_delete_in_batches_removes_every_matching_row_in_small_transactions(db):
    tenant = TenantFactory()
    for n in range(7):
        email(tenant, "sent" if n % 2 else "queued", timedelta(days=100))

    removed = maintenance.delete_in_batches(OutboundEmail.objects.filter(status="sent"), batch_size=2)

    assert removed == 3
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {"queued"}
