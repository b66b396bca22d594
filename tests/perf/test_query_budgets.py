"""Query budgets for the two hottest endpoints: a query added to either fails here, without any timing.

The budgets are what the code needs today (counted under pytest, where the test's transaction turns the service's
transaction into a savepoint: SAVEPOINT and RELEASE are two of the enqueue's queries; production sends BEGIN and
COMMIT instead, which Django does not count). Raise a budget only with a reason in the commit.
"""

import pytest
from django.db import connection

from config.celery import app as celery_app
from jobs.models import Job
from notifications.models import OutboundEmail

# token+user, savepoint, email and job inserted together (jobs.services.job_enqueue_with, the job already marked
# published), release; SQLite cannot insert into two tables in one statement: one more there.
ENQUEUE_BUDGET = 4 if connection.vendor == "postgresql" else 5
STATUS_BUDGET = 2  # token+user, job joined with its result

EMAIL = {"to_email": "budget@example.com", "subject": "Budget", "body": "Counting queries."}


@pytest.fixture
def broker_cleanup():
    """The enqueue test publishes for real; nothing consumes it, so the message is dropped afterwards."""
    yield
    celery_app.control.purge()


def test_enqueue_stays_within_its_query_budget(
    api, django_assert_max_num_queries, django_capture_on_commit_callbacks, broker_cleanup
):
    with (
        django_assert_max_num_queries(ENQUEUE_BUDGET) as counted,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api.post("/api/send-email/", EMAIL, format="json")

    assert response.status_code == 202, response.content
    # counted, though it runs as a prepared statement on PostgreSQL (jobs.sql.prepared_cursor)
    assert any(query["sql"].startswith(("WITH domain AS", 'INSERT INTO "jobs_job"')) for query in counted), counted
    job = Job.objects.get(task_id=response.json()["task_id"])
    assert job.published_at is not None  # the publish (and its bookkeeping) is inside the budget
    assert OutboundEmail.objects.get(job_id=job.task_id).to_email == "budget@example.com"


def test_status_stays_within_its_query_budget(api, django_assert_max_num_queries, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # not published: only the rows matter here
        task_id = api.post("/api/send-email/", EMAIL, format="json").json()["task_id"]

    with django_assert_max_num_queries(STATUS_BUDGET):
        response = api.get(f"/api/tasks/{task_id}/")

    assert response.status_code == 200
    assert response.json()["status"] == "PENDING"


def test_an_unknown_task_costs_no_more_than_a_known_one(api, django_assert_max_num_queries):
    with django_assert_max_num_queries(STATUS_BUDGET):
        response = api.get("/api/tasks/no-such-task/")

    assert response.status_code == 404
