"""POST /api/webhooks/<source>/: verified over the raw body, stored before the answer, processed by a worker."""

import datetime
import logging
import threading
import time
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test import Client
from django_celery_results.models import TaskResult

from accounts.models import Tenant
from jobs.models import Job
from tests.factories import TenantFactory
from tests.webhooks.conftest import post_delivery, renewal, sign_delivery, wait_for_event
from webhooks.models import WebhookEvent, WebhookSource, new_signing_secret


def _nothing_stored() -> bool:
    return not WebhookEvent.objects.exists() and not Job.objects.exists()


# --- the whole way: signed delivery → stored → worker → tenant updated ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_signed_renewal_is_accepted_stored_and_processed_by_the_worker(celery_worker, billing_source, client):
    tenant = TenantFactory(name="Acme")
    delivery = sign_delivery(billing_source.signing_secret, renewal("acme", "2031-01-31"))

    response = post_delivery(client, delivery)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["webhook_id"] == delivery.webhook_id and body["task_id"]
    event = WebhookEvent.objects.get(pk=body["event_id"])
    assert (event.source, event.type, event.tenant) == (billing_source, "subscription.renewed", tenant)
    assert event.payload == renewal("acme", "2031-01-31")
    assert event.headers["webhook-id"] == delivery.webhook_id
    event = wait_for_event(event.pk)
    assert (event.status, event.attempts, event.error) == ("processed", 1, "")
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2031, 1, 31)
    job = Job.objects.get(task_id=body["task_id"])
    assert job.kind == "process_webhook" and job.tenant.slug == "system"  # billing is platform-wide


@pytest.mark.django_db(transaction=True)
def test_an_older_renewal_delivered_after_a_newer_one_does_not_take_the_period_back(
    celery_worker, billing_source, client
):
    tenant = TenantFactory(name="Acme")
    for period_end in ("2032-01-31", "2031-06-30"):  # the older one retried by the provider, arriving last
        accepted = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme", period_end)))
        assert wait_for_event(accepted.json()["event_id"]).status == "processed"

    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2032, 1, 31)


@pytest.mark.django_db(transaction=True)
def test_cancel_clears_the_period_end_and_unknown_types_are_ignored(celery_worker, billing_source, client):
    tenant = TenantFactory(name="Acme", subscription_current_period_end=datetime.date(2030, 5, 1))
    cancel = {"type": "subscription.canceled", "data": {"tenant": "acme"}}
    canceled = post_delivery(client, sign_delivery(billing_source.signing_secret, cancel))
    unknown = post_delivery(client, sign_delivery(billing_source.signing_secret, {"type": "invoice.paid", "data": {}}))

    assert (canceled.status_code, unknown.status_code) == (202, 202)
    assert wait_for_event(canceled.json()["event_id"]).status == "processed"
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end is None
    ignored = wait_for_event(unknown.json()["event_id"])
    assert (ignored.status, ignored.type, ignored.payload) == (
        "ignored",
        "invoice.paid",
        {"type": "invoice.paid", "data": {}},
    )


@pytest.mark.django_db(transaction=True)
def test_a_renewal_for_an_unknown_tenant_fails_with_a_clear_error(celery_worker, billing_source, client, caplog):
    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("nobody")))

    event = wait_for_event(response.json()["event_id"])
    assert event.status == "failed"
    assert event.error == "data.tenant: no tenant with slug 'nobody'."
    assert event.tenant is None
    # the job fails too, logged as an expected failure: no ERROR with a traceback in the worker's log
    job = Job.objects.get(task_id=response.json()["task_id"])
    deadline = time.monotonic() + 10
    while not TaskResult.objects.filter(task_id=job.task_id, status="FAILURE").exists():
        assert time.monotonic() < deadline, "the job never failed"
        time.sleep(0.05)
    time.sleep(0.2)  # the worker logs the failure just after storing it
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.mark.django_db(transaction=True)
def test_a_renewal_naming_the_platforms_own_tenant_fails_and_changes_nothing(celery_worker, billing_source, client):
    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("system")))

    event = wait_for_event(response.json()["event_id"])
    assert (event.status, event.error) == ("failed", "data.tenant: 'system' is not a customer's tenant.")
    assert Tenant.objects.get(slug="system").subscription_current_period_end is None


# --- refused deliveries: nothing stored ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d, secret: d.__setattr__("body", d.body.replace(b"2031", b"2032")), id="changed-byte"),
        pytest.param(
            lambda d, secret: d.__setattr__(
                "headers", sign_delivery(new_signing_secret(), renewal("acme"), webhook_id=d.webhook_id).headers
            ),
            id="wrong-secret",
        ),  # fmt: skip
        pytest.param(
            lambda d, secret: d.__setattr__(
                "headers",
                sign_delivery(secret, renewal("acme"), at=datetime.datetime.now(tz=UTC) - timedelta(minutes=6)).headers,
            ),
            id="six-minutes-old",
        ),  # fmt: skip
        pytest.param(
            lambda d, secret: d.__setattr__(
                "headers",
                sign_delivery(secret, renewal("acme"), at=datetime.datetime.now(tz=UTC) + timedelta(minutes=6)).headers,
            ),
            id="six-minutes-ahead",
        ),  # fmt: skip
        pytest.param(lambda d, secret: d.headers.pop("webhook-signature"), id="unsigned"),
    ],
)
def test_a_delivery_that_does_not_verify_is_401_and_nothing_is_stored(billing_source, client, tamper):
    TenantFactory(name="Acme")
    delivery = sign_delivery(billing_source.signing_secret, renewal("acme"))
    tamper(delivery, billing_source.signing_secret)

    response = post_delivery(client, delivery)

    assert response.status_code == 401
    assert set(response.json()) & {"webhook-signature", "webhook-timestamp"}
    assert _nothing_stored()
    assert Tenant.objects.get(slug="acme").subscription_current_period_end is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json at all", "body"),
        ('["a", "list"]', "body"),
        ('{"type": NaN}', "body"),
        ('{"data": {}}', "type"),
        ('{"type": 42}', "type"),
        ('{"type": "x", "data": "nul \\u0000 inside"}', "body"),
    ],
)
def test_a_signed_body_that_is_not_a_json_event_is_400_naming_the_field(billing_source, client, body, field):
    response = post_delivery(client, sign_delivery(billing_source.signing_secret, body))

    assert response.status_code == 400
    assert field in response.json()
    assert _nothing_stored()


def test_a_body_over_the_webhook_limit_is_413_and_nothing_is_stored(billing_source, client, settings):
    settings.WEBHOOKS_MAX_BODY_BYTES = 1024
    payload = {"type": "subscription.renewed", "data": {"padding": "x" * 2000}}

    response = post_delivery(client, sign_delivery(billing_source.signing_secret, payload))

    assert response.status_code == 413
    assert "1024" in response.json()["detail"]
    assert _nothing_stored()


def test_an_unknown_or_inactive_source_is_404(billing_source, client):
    WebhookSource.objects.create(slug="old-crm", is_active=False)
    for slug in ("nope", "old-crm"):
        response = post_delivery(client, sign_delivery(billing_source.signing_secret, {"type": "x"}), source=slug)
        assert response.status_code == 404
        assert response.json() == {"detail": "No webhook source with this name."}
    assert _nothing_stored()


def test_only_post_is_allowed(billing_source, client):
    response = client.get("/api/webhooks/billing/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"


# --- repeats ------------------------------------------------------------------------------------------------------


def test_a_repeated_webhook_id_answers_200_with_the_first_ids_and_changes_nothing(billing_source, client):
    TenantFactory(name="Acme")
    delivery = sign_delivery(billing_source.signing_secret, renewal("acme"))
    first = post_delivery(client, delivery)
    # the provider retries with a fresh timestamp and signature, as senders do
    again = sign_delivery(billing_source.signing_secret, renewal("acme"), webhook_id=delivery.webhook_id)

    second = post_delivery(client, again)

    assert (first.status_code, second.status_code) == (202, 200)
    ids = ("webhook_id", "task_id", "event_id")
    assert [second.json()[k] for k in ids] == [first.json()[k] for k in ids]
    assert WebhookEvent.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_copies_make_one_event_and_one_effect(celery_worker, billing_source):
    tenant = TenantFactory(name="Acme")
    delivery = sign_delivery(billing_source.signing_secret, renewal("acme", "2032-02-29"))
    start = threading.Barrier(20)
    answers: list = [None] * 20

    def send(index: int) -> None:
        try:
            start.wait(timeout=30)
            response = post_delivery(Client(), delivery)
            answers[index] = (response.status_code, response.json())
        finally:
            connection.close()  # each thread has its own connection; the test database must be droppable

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    codes = sorted(code for code, _ in answers)
    assert codes == [200] * 19 + [202]
    assert len({(body["webhook_id"], body["task_id"], body["event_id"]) for _, body in answers}) == 1
    event = wait_for_event(answers[0][1]["event_id"])
    assert WebhookEvent.objects.count() == 1
    assert Job.objects.filter(kind="process_webhook").count() == 1
    assert (event.status, event.attempts) == ("processed", 1)
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2032, 2, 29)


# --- processing once -----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_running_the_task_again_does_not_apply_the_effect_again(celery_worker, billing_source, client):
    from webhooks.tasks import process_webhook

    tenant = TenantFactory(name="Acme")
    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme", "2031-01-31")))
    event = wait_for_event(response.json()["event_id"])
    Tenant.objects.filter(pk=tenant.pk).update(subscription_current_period_end=datetime.date(2035, 1, 1))

    # a redelivery of the same message: same task id, same arguments
    result = process_webhook.apply_async(kwargs={"event_id": event.pk}, task_id=event.job_id).get(timeout=20)

    assert result["status"] == "processed"
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2035, 1, 1)  # not set back to 2031
    event.refresh_from_db()
    assert event.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_locked_tenant_row_is_a_transient_error_retried_with_backoff(celery_worker, billing_source, client, settings):
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("needs row locks; SQLite locks the whole database for a writer")
    settings.WEBHOOKS_LOCK_TIMEOUT_MS = 200
    settings.WEBHOOKS_RETRY_BASE_DELAY = 0.5
    tenant = TenantFactory(name="Acme")
    locked, release = threading.Event(), threading.Event()

    def hold_the_tenant_row() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                # what an UPDATE of the tenant takes: new rows may still point at the tenant, updates must wait
                Tenant.objects.select_for_update(no_key=True).get(pk=tenant.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_tenant_row)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme", "2031-03-01")))
        event_id = response.json()["event_id"]
        # the first attempt runs into the lock and is recorded as a failed attempt, still to be retried
        event = WebhookEvent.objects.get(pk=event_id)
        for _ in range(300):
            event.refresh_from_db()
            if event.attempts >= 1:
                break
            threading.Event().wait(0.05)
        assert event.status == "received" and "lock" in event.error.lower(), event.error
    finally:
        release.set()
        holder.join(timeout=10)

    event = wait_for_event(event_id)
    assert event.status == "processed" and event.attempts >= 2 and event.error == ""
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2031, 3, 1)


# --- the worker is down when the webhook arrives -----------------------------------------------------------------


def test_a_webhook_that_arrives_while_no_worker_runs_is_processed_when_one_starts(
    worker_process, billing_source, client
):
    tenant = TenantFactory(name="Acme")

    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme", "2031-07-01")))

    assert response.status_code == 202
    event = WebhookEvent.objects.get(pk=response.json()["event_id"])
    assert event.status == "received"  # stored, waiting on the queue

    worker = worker_process().start()

    event = wait_for_event(event.pk, timeout=60)
    assert (event.status, event.attempts) == ("processed", 1), worker.log()
    tenant.refresh_from_db()
    assert tenant.subscription_current_period_end == datetime.date(2031, 7, 1)
