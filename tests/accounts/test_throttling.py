"""The tenant API throttle at high rates: each process takes its tenant's budget in small batches (one Redis call per
batch), and all processes together never let through more than the budget."""

import time
from types import SimpleNamespace

import pytest

from accounts import throttling
from accounts.throttling import TenantRateThrottle


@pytest.fixture
def redis_calls(monkeypatch):
    """Counts the throttle's Redis calls; each still goes to the real script in the real Redis."""
    calls = []
    script = throttling._take()

    def counted(**kwargs):
        calls.append(kwargs)
        return script(**kwargs)

    monkeypatch.setattr(throttling, "_take", lambda: counted)
    return calls


def request_of(tenant_id: int):
    return SimpleNamespace(user=SimpleNamespace(tenant_id=tenant_id), META={})


def test_two_processes_taking_batches_never_exceed_the_budget_together(settings, monkeypatch, redis_calls):
    settings.API_TENANT_RATE = "200/s"  # a burst of 200, then one every 5 ms; a batch is 10
    processes = [{}, {}]  # each web process has its own batches
    answers = []
    started = time.monotonic()
    for number in range(400):
        monkeypatch.setattr(throttling, "_leases", processes[number % 2])
        answers.append(TenantRateThrottle().allow_request(request_of(9001), view=None))
        if number == 179:
            calls_within_budget = len(redis_calls)
    elapsed = time.monotonic() - started

    assert all(answers[:180])
    assert calls_within_budget <= 180 / 10 + 2  # a call per batch of 10, not per request
    refilled = elapsed * 200 + 1
    assert sum(answers) <= 200 + refilled  # the batches come out of the one budget
    assert sum(answers) >= 200 - 2 * 10  # at most one batch per process may go unused


def test_an_unused_batch_lapses_when_the_budget_would_have_refilled_it(settings, redis_calls):
    settings.API_TENANT_RATE = "200/s"  # a batch of 10 stands for 50 ms
    assert TenantRateThrottle().allow_request(request_of(9002), view=None)
    assert TenantRateThrottle().allow_request(request_of(9002), view=None)
    assert len(redis_calls) == 1  # the second came from the batch

    time.sleep(0.06)
    assert TenantRateThrottle().allow_request(request_of(9002), view=None)
    assert len(redis_calls) == 2


def test_exactly_the_budget_goes_through_then_429(settings):
    settings.API_TENANT_RATE = "10/min"
    answers = [TenantRateThrottle().allow_request(request_of(9004), view=None) for _ in range(11)]
    assert answers == [True] * 10 + [False]


def test_at_an_ordinary_rate_every_request_asks_redis(settings, redis_calls):
    settings.API_TENANT_RATE = "600/min"  # 10 a second: a batch would be half a request
    for _ in range(3):
        assert TenantRateThrottle().allow_request(request_of(9003), view=None)
    assert [call["args"][2] for call in redis_calls] == [1, 1, 1]
