"""The tenant API throttle: at most the budget in any period (a sliding log), and at high rates each process takes its
tenant's budget in small batches (one Redis call per batch) while all processes together still never let through more
than the budget."""

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
    if elapsed < 1:  # all of it inside one period (else the first requests have left it)
        assert sum(answers) <= 200  # the batches come out of the one budget
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


def redis_now_us() -> int:
    from jobs.redis_client import redis_client

    seconds, micros = redis_client().time()
    return seconds * 1_000_000 + micros


def spend(tenant_id: int, *, count: int, seconds_ago: float) -> None:
    """Enter ``count`` requests into the tenant's log as one batch, as the throttle does, dated ``seconds_ago`` by
    Redis's clock."""
    from jobs.redis_client import redis_client

    log, used, at = (
        f"throttle:log:t{tenant_id}",
        f"throttle:used:t{tenant_id}",
        redis_now_us() - round(seconds_ago * 1e6),
    )
    redis_client().zadd(log, {f"{redis_client().hincrby(used, 'n', 1)}@{at}:{count}": at})
    redis_client().hincrby(used, "used", count)


def test_a_budget_spent_59_seconds_ago_still_holds_back_the_next_request(settings):
    # A token bucket as large as the budget would have refilled 590 of 600 by now, letting through 1,190 in a minute.
    settings.API_TENANT_RATE = "600/min"
    spend(9005, count=600, seconds_ago=59)
    throttle = TenantRateThrottle()

    assert throttle.allow_request(request_of(9005), view=None) is False
    assert 0 < throttle.wait() <= 1.0  # until the oldest of them is a minute old


def test_requests_older_than_the_period_no_longer_count(settings):
    settings.API_TENANT_RATE = "600/min"
    spend(9006, count=600, seconds_ago=61)
    spend(9006, count=300, seconds_ago=30)
    spend(9006, count=299, seconds_ago=20)

    answers = [TenantRateThrottle().allow_request(request_of(9006), view=None) for _ in range(2)]
    assert answers == [True, False]


def test_a_batch_is_counted_for_as_long_as_it_may_be_used(settings, redis_calls):
    settings.API_TENANT_RATE = "200/s"  # batches of 10, usable for 50 ms
    assert TenantRateThrottle().allow_request(request_of(9007), view=None)

    from jobs.redis_client import redis_client

    [(entry, score)] = redis_client().zrange("throttle:log:t9007", 0, -1, withscores=True)
    assert entry.endswith(b":10")  # one entry for the batch of 10
    assert score >= redis_now_us() + 40_000  # dated after the batch lapses


def test_a_limit_of_nothing_refuses_everything(settings):
    settings.API_TENANT_RATE = "0/min"
    throttle = TenantRateThrottle()

    assert throttle.allow_request(request_of(9008), view=None) is False
    assert throttle.wait() == 60


@pytest.mark.parametrize("lost", ["log", "used"])
def test_losing_one_of_its_two_keys_neither_locks_a_tenant_out_nor_lets_it_through(settings, lost):
    from jobs.redis_client import redis_client

    settings.API_TENANT_RATE = "600/min"
    spend(9009, count=599, seconds_ago=10)
    redis_client().delete(f"throttle:{lost}:t9009")  # evicted, say

    answers = [TenantRateThrottle().allow_request(request_of(9009), view=None) for _ in range(2)]
    # the log is the truth: without it nothing is counted; without the total, it is counted again from the log
    assert answers == ([True, True] if lost == "log" else [True, False])
