"""The API's exception handler (jobs/exceptions.py): a database that does not answer is a 503 to retry, not a 500."""

import logging
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import OperationalError, connection, transaction

from jobs.exceptions import DATABASE_RETRY_AFTER_SECONDS, database_unavailable
from tests.conftest import free_port
from tests.webhooks.conftest import post_delivery, sign_delivery
from webhooks.models import WebhookEvent, WebhookSource

pytestmark = pytest.mark.django_db(transaction=True)  # the test closes the connection, so no test transaction


@contextmanager
def database_unreachable(tmp_path: Path):
    """New connections fail with the driver's own error, as while the database server is down or restarting."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict["PORT"] = free_port()  # nothing listens there: "connection refused"
    else:
        connection.settings_dict["NAME"] = str(tmp_path / "gone" / "db.sqlite3")  # "unable to open database file"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/reports/", None),
        ("/api/tasks/5b0e2f4c-2d4c-4c8e-9a51-0d3f1c6b7a10/", None),
        ("/api/send-email/", {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi"}),
        ("/api/auth/token/", {"email": "ada@example.com", "password": "correct-horse-battery"}),
    ],
)
def test_the_database_down_answers_503_with_retry_after(api, tmp_path, caplog, path, body):
    # given a client with a valid token, and the database gone since it got it

    # when it calls the API
    with database_unreachable(tmp_path), caplog.at_level(logging.WARNING):
        response = api.get(path) if body is None else api.post(path, body, format="json")

    # then it is told to come back, in JSON, and the log says why in one line, without a traceback
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert "database" in response.json()["detail"]
    warnings = [r for r in caplog.records if r.name == "jobs.exceptions" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and path in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


def test_a_webhook_delivery_while_the_database_is_down_is_a_503_to_retry_not_a_500(client, tmp_path, caplog):
    # given a provider posting a signed event to a source that exists
    source = WebhookSource.objects.create(slug="billing")
    delivery = sign_delivery(source.signing_secret, {"type": "subscription.renewed", "data": {}})

    # when the database is gone as it arrives
    with database_unreachable(tmp_path), caplog.at_level(logging.WARNING):
        response = post_delivery(client, delivery)

    # then the provider is told to send it again later, as with every API path, and no traceback is logged
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert "database" in response.json()["detail"]
    assert not [r for r in caplog.records if r.exc_info]

    # and once it is back, the same delivery is stored
    assert post_delivery(client, delivery).status_code == 202
    assert WebhookEvent.objects.filter(webhook_id=delivery.webhook_id).count() == 1


def test_a_page_while_the_database_is_down_is_a_503_page(client, tenant_user, tmp_path):
    client.force_login(tenant_user)

    with database_unreachable(tmp_path):
        response = client.get("/reports/")

    assert response.status_code == 503
    assert response["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS)
    assert b"try again" in response.content


def test_the_api_answers_again_once_the_database_is_back(api, tmp_path):
    with database_unreachable(tmp_path):
        assert api.get("/api/reports/").status_code == 503

    assert api.get("/api/reports/").status_code == 200


def real_error_of_a_statement_gone_wrong() -> Exception:
    """What the driver raises, through Django, for a statement that fails on a database that is up."""
    sql = (
        "SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)"
        if connection.vendor == "postgresql"
        else ("SELECT * FROM no_such_table")
    )
    with pytest.raises(OperationalError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return caught.value


def test_a_statement_that_fails_on_a_database_that_is_up_is_not_called_unavailable(tmp_path):
    # a statement timeout (PostgreSQL) or a missing table (SQLite): a 500 with its traceback, not "retry in 5 s"
    assert database_unavailable(real_error_of_a_statement_gone_wrong()) is False

    # while the server itself cannot be reached, it is
    with database_unreachable(tmp_path), pytest.raises(OperationalError) as caught:
        connection.ensure_connection()
    assert database_unavailable(caught.value) is True
