"""Sending email through the whole stack: HTTP, Redis, a real worker, a real SMTP server."""

import pytest

from jobs.models import Job
from notifications import services
from notifications.models import OutboundEmail
from notifications.services import email_request
from tests.conftest import wait_for_status

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = {"to_email": "ada@example.com", "subject": "Your export is ready", "body": "Hello Ada,\n\nIt is attached."}


def test_token_send_poll_and_the_message_arrives(celery_worker, smtp_server, tenant_user):
    # given a user who logs in for a token
    from rest_framework.test import APIClient

    client = APIClient()
    login = client.post(
        "/api/auth/token/", {"email": tenant_user.email, "password": "correct-horse-battery"}, format="json"
    )
    assert login.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {login.json()['token']}")

    # when they ask for an email
    accepted = client.post("/api/send-email/", EMAIL, format="json")

    # then it is accepted at once, and the status ends SUCCESS with the message at the SMTP server
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "queued" and body["message"] and body["task_id"]
    final = wait_for_status(client, body["task_id"])
    assert final["status"] == "SUCCESS", final
    assert final["error"] is None
    assert final["result"]["status"] == "sent"
    [message] = smtp_server.wait_for(1)
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your export is ready"
    assert "It is attached." in message.get_payload()
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts, email.job_id) == ("sent", 1, body["task_id"])
    assert message["Message-ID"] == email.message_id


def test_transient_smtp_failures_are_retried_with_growing_delays(celery_worker, smtp_server, api):
    # given a mail server that answers "try again later" twice
    smtp_server.refusals = ["451 4.3.0 Mailbox temporarily unavailable"] * 2

    accepted = api.post("/api/send-email/", EMAIL, format="json")

    # then the third attempt delivers, each wait longer than the one before
    final = wait_for_status(api, accepted.json()["task_id"], timeout=40)
    assert final["status"] == "SUCCESS", final
    assert len(smtp_server.wait_for(1)) == 1
    first, second, third = smtp_server.attempts
    assert second - first >= 0.75  # base delay 1 s, shortened by at most 25 %
    assert third - second > second - first
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts, email.error) == ("sent", 3, "")


def test_a_permanent_smtp_failure_ends_as_failure_with_a_short_error(celery_worker, smtp_server, api):
    smtp_server.refusals = ["550 5.1.1 No such user here"]

    accepted = api.post("/api/send-email/", EMAIL, format="json")

    final = wait_for_status(api, accepted.json()["task_id"])
    assert final["status"] == "FAILURE"
    assert final["error"] == "SMTP 550: 5.1.1 No such user here"
    assert "Traceback" not in str(final)
    assert smtp_server.messages == []
    email = OutboundEmail.objects.get()
    assert (email.status, email.attempts) == ("failed", 1)


def test_a_garbled_goodbye_after_the_message_was_taken_still_counts_as_sent(celery_worker, smtp_server, api):
    # given a mail server whose reply to QUIT is too long for smtplib (it raises "Line too long")
    smtp_server.quit_reply = "221 " + "x" * 9000

    accepted = api.post("/api/send-email/", EMAIL, format="json")

    # then the message it took is recorded as sent, once
    assert wait_for_status(api, accepted.json()["task_id"])["status"] == "SUCCESS"
    assert len(smtp_server.wait_for(2, timeout=2)) == 1
    assert OutboundEmail.objects.get().status == "sent"


def test_a_mail_server_that_never_recovers_fails_after_the_retries(celery_worker, smtp_server, api, settings):
    settings.EMAIL_MAX_RETRIES = 1
    smtp_server.refusals = ["421 4.7.0 Too busy"] * 5

    accepted = api.post("/api/send-email/", EMAIL, format="json")

    final = wait_for_status(api, accepted.json()["task_id"], timeout=30)
    assert final["status"] == "FAILURE"
    assert final["error"].startswith("Gave up after 2 attempts: SMTP 4")
    assert OutboundEmail.objects.get().status == "failed"


def test_running_the_task_again_after_it_sent_sends_nothing(celery_worker, smtp_server, api):
    from notifications.tasks import send_email

    accepted = api.post("/api/send-email/", EMAIL, format="json")
    wait_for_status(api, accepted.json()["task_id"])
    email = OutboundEmail.objects.get()

    # a redelivery of the same message: same task, same arguments
    send_email.apply_async(kwargs={"email_id": email.pk}, task_id=email.job_id).get(timeout=20)

    assert len(smtp_server.wait_for(2, timeout=1)) == 1
    assert OutboundEmail.objects.get().attempts == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to_email", "not-an-address"),
        ("to_email", "ada@example.com\nBcc: everyone@example.com"),
        ("subject", "Hello\r\nBcc: everyone@example.com"),
        ("subject", ""),
        ("body", None),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(api, field, value):
    payload = {**EMAIL, field: value}

    response = api.post("/api/send-email/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Job.objects.exists() and not OutboundEmail.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api):
    response = api.post("/api/send-email/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "detail" in response.json()
    assert not Job.objects.exists()


def test_without_a_token_nothing_is_accepted(client):
    response = client.post("/api/send-email/", EMAIL, content_type="application/json")

    assert response.status_code in (401, 403)
    assert not Job.objects.exists()


class Killed(BaseException):
    """Stands for the worker process dying: nothing of ours catches it, the open transaction rolls back."""


def test_a_resend_after_dying_between_the_servers_250_and_the_receipt_has_the_same_message_id(
    smtp_server, tenant_user, monkeypatch
):
    # given an accepted email whose first attempt dies just after the mail server took the message
    email = email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.id, **EMAIL)
    with monkeypatch.context() as patched:
        patched.setattr(services, "_receipt_write", lambda email: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            services.email_deliver(email_id=email.pk)
    assert OutboundEmail.objects.get().status == "queued"  # its commit never happened

    # when the redelivered task runs it again
    services.email_deliver(email_id=email.pk)

    # then the server has two copies (at-least-once) that say they are one message: the Message-ID given at acceptance
    first, second = smtp_server.wait_for(2)
    assert first["Message-ID"] == second["Message-ID"] == email.message_id != ""
