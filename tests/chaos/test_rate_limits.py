"""Email rates hold across all workers together, and per tenant; the API throttles each tenant with 429."""

import pytest

from tests.conftest import client_for, wait_for_status
from tests.factories import TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.chaos]


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def post_emails(client, n: int, prefix: str) -> list[str]:
    return [
        client.post(
            "/api/send-email/", {"to_email": f"{prefix}{i}@example.com", "subject": "s", "body": "b"}, format="json"
        ).json()["task_id"]
        for i in range(n)
    ]


def test_the_email_rate_holds_across_two_workers_together(worker_process, smtp_server, api):
    # given two worker processes with two pool processes each, and a limit of 4 emails a second in all
    env = {"EMAIL_RATE_LIMIT": "4/s", "TEST_EMAIL_URL": smtp_server.url}
    for _ in range(2):
        worker_process(concurrency=2, **env).start()

    task_ids = post_emails(api, 16, "user")

    for task_id in task_ids:
        assert wait_for_status(api, task_id, timeout=60)["status"] == "SUCCESS"
    arrivals = smtp_server.attempts
    assert len(arrivals) == 16
    assert most_in_one_second(arrivals) <= 4 + 2  # slack for the mail server's own timing; unlimited would be 16
    assert max(arrivals) - min(arrivals) >= 15 / 4 * 0.8


def test_one_tenant_at_its_limit_does_not_hold_back_another(worker_process, smtp_server, api):
    # a send over its tenant's rate goes straight back to the queue for its slot, leaving the worker free
    worker_process(
        concurrency=2, EMAIL_TENANT_RATE_LIMIT="1/s", EMAIL_RATE_LIMIT_MAX_WAIT="0", TEST_EMAIL_URL=smtp_server.url
    ).start()
    other = client_for(UserFactory(tenant=TenantFactory(name="Globex")))

    busy = post_emails(api, 5, "acme")
    [quiet] = post_emails(other, 1, "globex")

    assert wait_for_status(other, quiet, timeout=30)["status"] == "SUCCESS"
    for task_id in busy:
        assert wait_for_status(api, task_id, timeout=60)["status"] == "SUCCESS"
    by_recipient = {m["To"]: t for m, t in zip(smtp_server.messages, smtp_server.attempts, strict=True)}
    acme = sorted(t for to, t in by_recipient.items() if to.startswith("acme"))
    assert most_in_one_second(acme) <= 2
    assert by_recipient["globex0@example.com"] < acme[-1]


def test_a_tenant_over_its_api_rate_gets_429_with_retry_after(api, settings):
    settings.API_TENANT_RATE = "3/min"
    other = client_for(UserFactory(tenant=TenantFactory(name="Globex")))

    answers = [api.get("/api/tasks/unknown/").status_code for _ in range(4)]
    throttled = api.get("/api/tasks/unknown/")

    assert answers == [404, 404, 404, 429]
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert other.get("/api/tasks/unknown/").status_code == 404  # the budget is per tenant
