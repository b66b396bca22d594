"""jobs.sql: the written-out lock and update give and write exactly what the ORM would."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from jobs.models import Job
from jobs.sql import row_lock, row_update
from notifications.models import OutboundEmail
from notifications.services import email_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def email(tenant_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        return email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.pk, to_email="sql@example.com",
                             subject="Zürich ✓", body="line\nline", dedupe_key="sql:1")  # fmt: skip


def test_a_locked_row_is_the_instance_the_orm_gives(email):
    with transaction.atomic():
        locked = row_lock(OutboundEmail, email.pk)

    loaded = OutboundEmail.objects.get(pk=email.pk)
    assert model_to_dict(locked) == model_to_dict(loaded)
    assert locked.created_at == loaded.created_at and timezone.is_aware(locked.created_at)  # SQLite answers naive
    assert locked.job_id == email.job_id and locked._state.adding is False and locked._state.db == "default"


def test_no_row_no_instance(email):
    with transaction.atomic():
        assert row_lock(OutboundEmail, email.pk + 1000) is None


def test_an_update_writes_only_the_named_fields(email):
    sent_at = timezone.now()
    email.status, email.sent_at, email.attempts = OutboundEmail.Status.SENT, sent_at, 2
    email.subject = "not written"

    row_update(email, ["status", "sent_at", "attempts"])

    stored = OutboundEmail.objects.get(pk=email.pk)
    assert (stored.status, stored.sent_at, stored.attempts, stored.subject) == ("sent", sent_at, 2, "Zürich ✓")


# --- the enqueue's prepared insert (jobs.sql.prepared_cursor) ---------------------------------------------------------

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL only")

INSERT_TEXT = 'WITH domain AS (INSERT INTO "notifications_outboundemail"%'


def insert_runs() -> int:
    """How often this connection has run the two-row email insert as a prepared statement, all of them together."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(generic_plans + custom_plans), 0) FROM pg_prepared_statements WHERE statement LIKE %s",
            [INSERT_TEXT],
        )
        return cursor.fetchone()[0]


def request_email(tenant_user, **fields) -> OutboundEmail:
    return email_request(tenant_id=tenant_user.tenant_id, user_id=tenant_user.pk, to_email="prep@example.com",
                         subject="Prepared ✓", body="once parsed", **fields)  # fmt: skip


@postgresql_only
def test_the_enqueue_insert_is_prepared_once_on_a_connection_and_then_only_run(
    tenant_user, django_capture_on_commit_callbacks
):
    before = insert_runs()
    with django_capture_on_commit_callbacks(execute=False):
        first, second = request_email(tenant_user), request_email(tenant_user, dedupe_key="prep:2")

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE %s", [INSERT_TEXT])
        assert cursor.fetchone()[0] == 1  # one statement, run twice: parsed and planned once
    assert insert_runs() == before + 2
    stored = OutboundEmail.objects.get(pk=second.pk)  # the server-bound values land as the ORM would write them
    assert (stored.subject, stored.dedupe_key, stored.job_id) == ("Prepared ✓", "prep:2", second.job_id)
    assert Job.objects.get(task_id=first.job_id).kwargs == {"email_id": first.pk}


@postgresql_only
def test_with_prepared_statements_turned_off_the_insert_is_not_prepared(
    tenant_user, settings, django_capture_on_commit_callbacks
):
    settings.DATABASE_PREPARED_STATEMENTS = False
    before = insert_runs()
    with django_capture_on_commit_callbacks(execute=False):
        email = request_email(tenant_user)

    assert insert_runs() == before
    assert Job.objects.get(task_id=email.job_id).kwargs == {"email_id": email.pk}


@postgresql_only
def test_a_first_run_the_database_refuses_leaves_the_statement_usable(tenant_user, django_capture_on_commit_callbacks):
    OutboundEmail.objects.create(tenant_id=tenant_user.tenant_id, to_email="x@example.com", subject="s", body="b",
                                 dedupe_key="taken")  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False):
        with pytest.raises(IntegrityError), transaction.atomic():
            request_email(tenant_user, dedupe_key="taken")  # prepared, then refused: psycopg forgets it
        email = request_email(tenant_user)  # prepared again, under another name

    assert Job.objects.get(task_id=email.job_id).kwargs == {"email_id": email.pk}
    assert insert_runs() >= 1


@postgresql_only
def test_psycopg_keeps_prepared_statements_off_for_every_other_query(tenant_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        request_email(tenant_user)

    assert connection.connection.prepare_threshold is None  # Django's setting: psycopg counts nothing else


@postgresql_only
def test_a_statement_the_server_lost_fails_once_and_is_then_prepared_again(
    tenant_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        request_email(tenant_user)  # prepared
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")  # behind psycopg's back, as a pooler's DISCARD ALL would be
        with pytest.raises(DatabaseError, match="does not exist"), transaction.atomic():
            request_email(tenant_user)
        email = request_email(tenant_user)

    assert Job.objects.get(task_id=email.job_id).kwargs == {"email_id": email.pk}
    assert insert_runs() == 1
