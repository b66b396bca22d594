"""jobs.sql: the written-out lock and update give and write exactly what the ORM would."""

import pytest
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

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
