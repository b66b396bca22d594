"""Helpers for the schedules, admin and operations tests."""

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import Job
from tests.factories import TenantFactory, UserFactory


class _FormFields(HTMLParser):
    """What a browser would submit for the first <form method="post">: inputs, checked boxes, selected options."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self._in_form = True
        if not self._in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data[name] = attrs.get("value") or "on"
            else:
                self.data[name] = attrs.get("value") or ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            if self._textarea:
                self.data[self._textarea] = self.data[self._textarea].removeprefix("\n")
            self._textarea = None
        elif tag == "form":
            self._in_form = False


def form_data(client: Client, url: str) -> dict[str, str]:
    """GET an admin form and return the fields a browser would post back unchanged."""
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    parser = _FormFields()
    parser.feed(response.content.decode())
    return parser.data


@pytest.fixture
def superuser(db):
    return UserFactory(tenant=None, email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(UserFactory(tenant=None, email="staff@example.com", is_staff=True))
    return client


def finished_job(*, tenant=None, kind="send_email", status="SUCCESS", done_ago=timedelta(0), **fields) -> Job:
    """A Job with a result row in ``status`` written ``done_ago`` before now."""
    job = Job.objects.create(
        task_id=f"t-{Job.objects.count()}-{timezone.now().timestamp()}",
        tenant=tenant or TenantFactory(),
        kind=kind,
        task_name=f"tests.{kind}",
        **fields,
    )
    TaskResult.objects.create(task_id=job.task_id, status=status, task_name=job.task_name)
    TaskResult.objects.filter(task_id=job.task_id).update(date_done=timezone.now() - done_ago)  # date_done is auto_now
    return job
