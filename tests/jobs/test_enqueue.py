"""The one way work reaches the broker: written with the caller's transaction, published after commit, relayed."""

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from jobs.models import Job
from jobs.recovery import jobs_recover_stranded
from jobs.services import jobs_publish_pending
from jobs.tasks import publish_unpublished_jobs
from notifications.models import OutboundEmail
from notifications.services import email_request
from tests.conftest import broker_at, wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi"}


def test_a_rolled_back_transaction_leaves_no_job_and_runs_nothing(celery_worker, smtp_server, tenant_user):
    # when a request's transaction fails after enqueueing
    with pytest.raises(RuntimeError), transaction.atomic():
        email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)
        raise RuntimeError("the rest of the request failed")

    # then no row remains, and a job sent afterwards is the only one the (first-in, first-out) worker ever runs
    assert not Job.objects.exists() and not OutboundEmail.objects.exists()
    barrier = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **{**EMAIL, "subject": "Barrier"})
    barrier_result = celery_app.AsyncResult(barrier.job_id)
    barrier_result.get(timeout=20)
    assert [m["Subject"] for m in smtp_server.messages] == ["Barrier"]
    assert TaskResult.objects.filter(task_name="notifications.send_email").count() == 1


def test_broker_down_at_enqueue_the_job_waits_and_the_relay_publishes_it_once(
    celery_worker, smtp_server, api, settings
):
    settings.JOBS_RELAY_GRACE_SECONDS = 0  # the relay may take the job at once (in service it waits a few seconds)
    # given a broker that cannot be reached
    with broker_at("redis://127.0.0.1:1/0"):
        started = time.monotonic()
        response = api.post("/api/send-email/", EMAIL, format="json")
        elapsed = time.monotonic() - started

    # then the request still succeeds, quickly, and the job is recorded but unpublished
    assert response.status_code == 202
    assert elapsed < 10
    task_id = response.json()["task_id"]
    job = Job.objects.get(task_id=task_id)
    assert job.published_at is None
    assert api.get(f"/api/tasks/{task_id}/").json()["status"] == "PENDING"

    # when the broker is back and the relay runs (twice, as beat would)
    publish_unpublished_jobs.apply_async().get(timeout=20)
    final = wait_for_status(api, task_id)
    publish_unpublished_jobs.apply_async().get(timeout=20)

    # then the job ran exactly once
    assert final["status"] == "SUCCESS"
    job.refresh_from_db()
    assert job.published_at is not None and job.publish_count == 1
    assert len(smtp_server.wait_for(2, timeout=2)) == 1


def test_the_relay_leaves_jobs_still_inside_their_grace_period(celery_worker, settings, tenant_user):
    from jobs.services import jobs_publish_pending

    settings.JOBS_RELAY_GRACE_SECONDS = 60
    with broker_at("redis://127.0.0.1:1/0"):
        email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)

    assert jobs_publish_pending() == 0
    assert Job.objects.get().published_at is None


def test_same_idempotency_key_gives_the_first_task_and_makes_no_second_job(api):
    first = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="order-42-receipt")
    again = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="order-42-receipt")
    other = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="order-43-receipt")

    assert first.status_code == again.status_code == other.status_code == 202
    assert again.json() == first.json()
    assert other.json()["task_id"] != first.json()["task_id"]
    assert Job.objects.count() == 2 and OutboundEmail.objects.count() == 2


def test_an_idempotency_key_is_per_tenant(api, db):
    from tests.conftest import client_for
    from tests.factories import TenantFactory, UserFactory

    other_tenant = client_for(UserFactory(tenant=TenantFactory(name="Globex")))

    mine = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    theirs = other_tenant.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert mine.json()["task_id"] != theirs.json()["task_id"]
    assert Job.objects.count() == 2


def test_an_idempotency_key_expires_after_24_hours(api):
    from datetime import timedelta

    from jobs.models import IdempotencyKey

    first = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    IdempotencyKey.objects.update(created_at=IdempotencyKey.objects.get().created_at - timedelta(hours=25))

    later = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert later.json()["task_id"] != first.json()["task_id"]
    assert Job.objects.count() == 2


def test_a_rejected_request_does_not_use_up_its_idempotency_key(api):
    bad = api.post("/api/send-email/", {**EMAIL, "to_email": "nope"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    good = api.post("/api/send-email/", EMAIL, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert (bad.status_code, good.status_code) == (400, 202)
    assert Job.objects.count() == 1


def test_an_email_and_its_job_are_written_together_and_published_after_commit(tenant_user, monkeypatch):
    published = []
    monkeypatch.setattr("jobs.services.broker.publish", lambda app, **kw: published.append(kw))

    with transaction.atomic():
        email = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)
        assert published == []  # not before the commit

    job = Job.objects.get()
    assert (job.task_id, job.kwargs, job.tenant_id, job.user_id) == (email.job_id, {"email_id": email.pk},
                                                                   tenant_user.tenant_id, tenant_user.id)  # fmt: skip
    assert (job.kind, job.task_name, job.run_count, job.canceled_at) == ("send_email", "notifications.send_email", 0,
                                                                         None)  # fmt: skip
    assert job.accepted_at is not None and job.published_at is not None and job.publish_count == 1
    assert OutboundEmail.objects.get(pk=email.pk).job_id == job.task_id
    assert published == [{"task_name": "notifications.send_email", "task_id": job.task_id,
                          "kwargs": {"email_id": email.pk}, "url": celery_app.conf.broker_write_url,
                          "unconfirmed": False}]  # fmt: skip  # outside a web request: it waits for the answer


def test_a_published_message_carries_no_time_limits_so_the_worker_applies_its_own(tenant_user):
    # given a task this process knows, with time limits of its own (the web's settings, which may not be the worker's)
    from reports.services import report_request
    from reports.tasks import generate_report

    celery_app.control.purge()
    assert generate_report.soft_time_limit and generate_report.time_limit

    # when a job of it is published
    report = report_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, report_type="users")

    # then the message on the broker leaves the limits to the worker
    with celery_app.connection_for_write() as connection:
        message = connection.default_channel.basic_get("reports", no_ack=True)
    assert message is not None and message.headers["id"] == report.job_id
    assert message.headers["timelimit"] in ([None, None], (None, None))


def test_a_refused_insert_leaves_no_job_and_the_callers_transaction_usable(tenant_user, monkeypatch):
    monkeypatch.setattr("jobs.services._send", lambda job, answers=None: False)  # rows only: nothing reaches the broker
    email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, dedupe_key="once", **EMAIL)

    with transaction.atomic():
        with pytest.raises(IntegrityError):
            email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, dedupe_key="once", **EMAIL)
        second = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)  # still usable

    assert OutboundEmail.objects.count() == Job.objects.count() == 2
    assert Job.objects.filter(task_id=second.job_id).exists()


def test_task_ids_are_time_ordered_uuid7_so_new_ones_append_to_their_indexes():
    import uuid

    from jobs.services import job_new_id

    # given ids made a few milliseconds apart, and many made at once
    spaced = []
    for _ in range(5):
        spaced.append(job_new_id())
        time.sleep(0.002)
    burst = [job_new_id() for _ in range(10_000)]

    # then each is a version 7 UUID (RFC 9562), later ones sort after earlier ones, and none repeats
    assert all(uuid.UUID(value).version == 7 and uuid.UUID(value).variant == uuid.RFC_4122 for value in spaced + burst)
    assert spaced == sorted(spaced)
    assert burst[0][:13] <= burst[-1][:13]  # the millisecond part never goes back
    assert len(set(burst)) == len(burst)


@pytest.fixture
def published_mark_fails():
    """The database refuses to change a job's "published" mark (a failover just after the enqueue's commit, say);
    calling the fixture's value lets it through again."""
    from django.db import connection

    if connection.vendor == "postgresql":
        refuse = [
            "CREATE FUNCTION refuse_mark() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the database went away'; END $$",
            "CREATE TRIGGER refuse_mark BEFORE UPDATE OF published_at ON jobs_job "
            "FOR EACH ROW EXECUTE FUNCTION refuse_mark()",
        ]
        allow = ["DROP TRIGGER IF EXISTS refuse_mark ON jobs_job", "DROP FUNCTION IF EXISTS refuse_mark()"]
    else:
        refuse = [
            "CREATE TRIGGER refuse_mark BEFORE UPDATE OF published_at ON jobs_job "
            "BEGIN SELECT RAISE(ABORT, 'the database went away'); END"
        ]
        allow = ["DROP TRIGGER IF EXISTS refuse_mark"]

    def run(statements: list[str]) -> None:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    run(refuse)
    yield lambda: run(allow)
    run(allow)


def test_an_accepted_job_is_marked_published_with_its_insert_not_by_a_statement_after_the_publish(api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    celery_app.control.purge()

    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/send-email/", EMAIL, format="json")

    job = Job.objects.get(task_id=response.json()["task_id"])
    assert (job.published_at is not None, job.publish_count) == (True, 1)
    assert [query["sql"] for query in queries if query["sql"].lstrip().upper().startswith("UPDATE")] == []
    assert queued("default") == 1


def test_a_job_the_broker_refused_and_that_could_not_be_unmarked_still_answers_202_and_the_sweeper_publishes_it(
    api, published_mark_fails
):
    celery_app.control.purge()

    # when an email is requested while the broker is down, and the database then refuses to unmark its job
    with broker_at("redis://127.0.0.1:1/0"):
        response = api.post("/api/send-email/", EMAIL, format="json")

    # then the client is told it was accepted (it was: committed), not asked to send it again
    assert response.status_code == 202, response.content
    job = Job.objects.get(task_id=response.json()["task_id"])
    assert (job.published_at is not None, job.publish_count) == (True, 1)  # so the relay passes it by
    assert jobs_publish_pending(grace=timedelta(0)) == 0
    assert queued("default") == 0

    # and the stranded-job sweeper, finding it in no queue and with no worker on two sweeps, publishes it
    published_mark_fails()
    assert jobs_recover_stranded(grace=timedelta(0)) == []
    assert jobs_recover_stranded(grace=timedelta(0)) == [job.task_id]
    job.refresh_from_db()
    assert job.publish_count == 2
    assert queued("default") == 1


def queued(queue: str) -> int:
    """Messages waiting on the broker's list for ``queue`` (none when there is no list)."""
    import redis

    return redis.Redis.from_url(celery_app.conf.broker_url).llen(queue)
