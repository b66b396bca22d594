"""The per-process cache of tokens and statuses (jobs.localcache): a hit costs no query, and a change made anywhere,
by any process, is seen by the next request; with its invalidations out of reach the cache steps aside."""

import select
import socket
import subprocess
import sys
import threading
import time

import pytest
from celery import current_app, states
from django.db import transaction
from django_celery_results.models import TaskResult
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs import localcache
from jobs.localcache import local_cache
from jobs.models import Job
from jobs.redis_client import redis_client
from jobs.services import job_new_id
from tests.conftest import PROJECT_DIR, client_for, free_port, subprocess_env
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # what a web process does: no transaction around a request


@pytest.fixture(autouse=True)
def _entries_never_expire(settings):
    """Nothing here may pass because an entry merely expired."""
    settings.JOBS_LOCAL_CACHE_SECONDS = 3600


@pytest.fixture
def user():
    return UserFactory(tenant=TenantFactory(name="Acme"))


def job_of(user) -> Job:
    return Job.objects.create(task_id=job_new_id(), tenant_id=user.tenant_id, kind="send_email", task_name="t")


def in_another_process(code: str) -> None:
    """Run Django code in a separate Python process on this test's database and Redis."""
    script = f"import django; django.setup()\n{code}"
    subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=subprocess_env(), check=True, timeout=60)


def test_a_repeated_poll_makes_no_query(user, django_assert_num_queries):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING

    with django_assert_num_queries(0):
        assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING


def test_a_state_written_by_another_process_is_seen_by_the_next_poll(user):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING

    in_another_process(
        "from celery import current_app\n"
        f"current_app.backend.store_result({job.task_id!r}, {{'sent': True}}, 'SUCCESS')"
    )

    body = api.get(f"/api/tasks/{job.task_id}/").json()
    assert (body["status"], body["result"]) == (states.SUCCESS, {"sent": True})


def test_a_token_deleted_by_another_process_is_refused_at_once(user):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").status_code == 200

    in_another_process(
        f"from rest_framework.authtoken.models import Token\nToken.objects.filter(user_id={user.pk}).delete()"
    )

    assert api.get(f"/api/tasks/{job.task_id}/").status_code == 401


def test_a_deactivated_user_is_refused_at_once(user):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").status_code == 200

    user.is_active = False
    user.save()

    assert api.get(f"/api/tasks/{job.task_id}/").status_code == 401


def test_a_cancel_is_seen_at_once(user):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING

    assert api.post(f"/api/tasks/{job.task_id}/cancel/").status_code == 202

    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.REVOKED


def test_a_status_kept_for_one_tenant_is_not_shown_to_another(user):
    job = job_of(user)
    assert client_for(user).get(f"/api/tasks/{job.task_id}/").status_code == 200

    other = client_for(UserFactory(tenant=TenantFactory(name="Globex")))
    assert other.get(f"/api/tasks/{job.task_id}/").status_code == 404


def test_what_is_read_inside_a_transaction_that_rolls_back_is_not_kept(user):
    api = client_for(user)
    task_id = job_new_id()
    with pytest.raises(RuntimeError), transaction.atomic():
        Job.objects.create(task_id=task_id, tenant_id=user.tenant_id, kind="send_email", task_name="t")
        assert api.get(f"/api/tasks/{task_id}/").status_code == 200
        raise RuntimeError("roll back")

    assert api.get(f"/api/tasks/{task_id}/").status_code == 404


def test_with_its_subscription_broken_the_cache_reads_the_database(user):
    """Invalidations sent while the subscription is down are lost: what was kept before must not be served."""
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING
    host, port = local_cache._pubsub.connection._sock.getsockname()[:2]
    redis_client().client_kill(f"{host}:{port}")  # Redis drops our subscriber

    # Written behind the cache's back, as by a process whose message nobody received.
    Job.objects.filter(pk=job.pk).update(canceled_at="2026-01-01T00:00:00Z")

    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.REVOKED


def test_while_redis_is_out_of_reach_nothing_is_kept(user, monkeypatch):
    api, job = client_for(user), job_of(user)
    unreachable = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(localcache, "_subscriber_client", lambda: unreachable)  # nothing listens on that port
    local_cache.reset()
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING
    assert local_cache._pubsub is None

    Job.objects.filter(pk=job.pk).update(canceled_at="2026-01-01T00:00:00Z")  # nobody would hear of it

    local_cache._retry_at = 0.0
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.REVOKED


def test_a_read_that_raced_an_invalidation_is_not_kept(user):
    """A value loaded from the database while an invalidation for it was taken is not stored."""
    job = job_of(user)

    def load_while_another_thread_invalidates():
        local_cache.forget("status", job.task_id)  # what taking a message does
        return ("stale",)

    assert local_cache.get_or_load("status", job.task_id, load_while_another_thread_invalidates) == ("stale",)
    assert local_cache.get_or_load("status", job.task_id, lambda: ("fresh",)) == ("fresh",)


def test_entries_expire(user, settings):
    settings.JOBS_LOCAL_CACHE_SECONDS = 1
    assert local_cache.get_or_load("test", "k", lambda: ("first",)) == ("first",)
    assert local_cache.get_or_load("test", "k", lambda: ("second",)) == ("first",)
    time.sleep(1.1)
    assert local_cache.get_or_load("test", "k", lambda: ("second",)) == ("second",)


def test_a_cache_of_zero_seconds_is_no_cache(user, settings, django_assert_num_queries):
    settings.JOBS_LOCAL_CACHE_SECONDS = 0
    api, job = client_for(user), job_of(user)
    api.get(f"/api/tasks/{job.task_id}/")

    with django_assert_num_queries(2):  # the token's user, the status
        api.get(f"/api/tasks/{job.task_id}/")


def test_a_large_result_is_not_kept_in_memory(user, django_assert_num_queries):
    api, job = client_for(user), job_of(user)
    current_app.backend.store_result(job.task_id, {"rows": "x" * 10_000}, states.SUCCESS)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["result"] == {"rows": "x" * 10_000}

    with django_assert_num_queries(1):  # the token's user is kept, the status is read again
        api.get(f"/api/tasks/{job.task_id}/")


def test_a_result_or_job_deleted_as_in_the_admin_is_seen_at_once(user):
    api, job = client_for(user), job_of(user)
    current_app.backend.store_result(job.task_id, {"sent": True}, states.SUCCESS)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.SUCCESS

    TaskResult.objects.filter(task_id=job.task_id).delete()
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING

    Job.objects.filter(pk=job.pk).delete()
    assert api.get(f"/api/tasks/{job.task_id}/").status_code == 404


class SilentProxy:
    """A TCP proxy to Redis that can stop passing bytes while keeping both connections open: a connection that died
    without a word (a half-open TCP connection, a NAT entry dropped)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.silent = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([a, b], [], [], 0.05)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if not self.silent:
                    (b if sock is a else a).sendall(data)


@pytest.fixture
def silent_proxy(monkeypatch):
    """The cache's subscription goes through a proxy that the test can silence."""
    kwargs = redis_client().get_connection_kwargs()
    proxy = SilentProxy(kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379))
    subscriber = Redis(host="127.0.0.1", port=proxy.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(localcache, "_subscriber_client", lambda: subscriber)
    local_cache.reset()
    return proxy


def test_a_subscription_that_dies_without_a_word_is_dropped_while_polled(user, silent_proxy):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING
    dying = local_cache._pubsub

    silent_proxy.silent = True
    Job.objects.filter(pk=job.pk).update(canceled_at="2026-01-01T00:00:00Z")  # its message would be lost

    deadline = time.monotonic() + localcache.ALIVE_SECONDS + localcache.PING_SECONDS + 2
    while api.get(f"/api/tasks/{job.task_id}/").json()["status"] != states.REVOKED:
        assert time.monotonic() < deadline, "a dead subscription was still trusted"
        time.sleep(0.1)
    deadline = time.monotonic() + localcache.DEAD_SECONDS + localcache.PING_SECONDS + 2
    while local_cache._pubsub is dying:  # dropped, so that a new subscription can bring the cache back
        assert time.monotonic() < deadline, "a dead subscription was kept"
        api.get(f"/api/tasks/{job.task_id}/")
        time.sleep(0.1)


def test_after_a_quiet_spell_the_cache_is_not_trusted_before_the_subscription_answers(user, silent_proxy):
    api, job = client_for(user), job_of(user)
    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.PENDING

    silent_proxy.silent = True  # dies while the process is idle
    time.sleep(localcache.ALIVE_SECONDS + 0.2)
    Job.objects.filter(pk=job.pk).update(canceled_at="2026-01-01T00:00:00Z")

    assert api.get(f"/api/tasks/{job.task_id}/").json()["status"] == states.REVOKED
