import uuid
from datetime import datetime

import pytest

from jobs.models import Job
from notifications.models import OutboundEmail
from tests.conftest import client_for, wait_for_status
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi"}


def test_another_tenants_task_looks_exactly_like_a_missing_one(api):
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]
    intruder = client_for(UserFactory(tenant=TenantFactory(name="Globex")))

    theirs = intruder.get(f"/api/tasks/{task_id}/")
    missing = intruder.get(f"/api/tasks/{uuid.uuid4()}/")
    cancel = intruder.post(f"/api/tasks/{task_id}/cancel/")

    assert theirs.status_code == missing.status_code == cancel.status_code == 404
    assert theirs.content == missing.content == cancel.content
    assert api.get(f"/api/tasks/{task_id}/").status_code == 200
    assert Job.objects.get().canceled_at is None


def test_an_accepted_job_not_yet_started_is_pending(api):
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]

    body = api.get(f"/api/tasks/{task_id}/").json()

    assert body == {
        "task_id": task_id,
        "status": "PENDING",
        "result": None,
        "error": None,
        "progress": None,
        "kind": "send_email",
        "accepted_at": body["accepted_at"],
    }
    # with its offset, on every database (SQLite's driver answers naive datetimes)
    assert datetime.fromisoformat(body["accepted_at"]) == Job.objects.get(task_id=task_id).accepted_at


def test_cancel_a_pending_job_it_becomes_revoked_and_never_runs(celery_worker, smtp_server, api, settings):
    # given a job that waits in its retry delay, so it has been accepted but is not running
    settings.EMAIL_RETRY_BASE_DELAY = 3
    smtp_server.refusals = ["451 4.3.0 later"]
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]
    wait_for_status(api, task_id, {"RETRY"})

    # when it is canceled
    response = api.post(f"/api/tasks/{task_id}/cancel/")

    # then it is REVOKED, stays so, and the mail server never receives it
    assert response.status_code == 202
    assert response.json()["status"] == "REVOKED"
    assert smtp_server.wait_for(1, timeout=6) == []
    assert api.get(f"/api/tasks/{task_id}/").json()["status"] == "REVOKED"
    assert Job.objects.get().canceled_by_id == api.user.id
    assert OutboundEmail.objects.get().status == "canceled"  # not left "queued" for ever


def test_a_retrying_job_says_why_in_a_short_error(celery_worker, smtp_server, api, settings):
    settings.EMAIL_RETRY_BASE_DELAY = 3
    smtp_server.refusals = ["451 4.3.0 Try again later"]
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]

    error = wait_for_status(api, task_id, {"RETRY"})["error"]

    # the mail server's words, not Celery's wrapper around an exception class of ours
    assert error == "SMTP 451: 4.3.0 Try again later"


def test_a_finished_job_cannot_be_canceled(celery_worker, smtp_server, api):
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]
    wait_for_status(api, task_id)

    response = api.post(f"/api/tasks/{task_id}/cancel/")

    assert response.status_code == 409
    assert response.json()["status"] == "SUCCESS"
    assert api.get(f"/api/tasks/{task_id}/").json()["status"] == "SUCCESS"


def test_a_repeated_cancel_with_the_same_idempotency_key_answers_like_the_first(api):
    task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]

    first = api.post(f"/api/tasks/{task_id}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
    again = api.post(f"/api/tasks/{task_id}/cancel/", HTTP_IDEMPOTENCY_KEY="cancel-1")
    without_key = api.post(f"/api/tasks/{task_id}/cancel/")

    assert (first.status_code, again.status_code, without_key.status_code) == (202, 202, 409)
    assert again.json() == first.json()
