"""The baselines: a no-op task and two bare DRF views with nothing of ours in them; and two "stock" views, the least a
durable, authenticated design must do, written the stock DRF + ORM way. Bench-only; never in production.

With ``BENCH_TRACE=1`` in a worker's environment, every task's start and end are pushed to Redis lists
(``bench:started`` as "<task id> <unix time>", ``bench:done`` as "<task id>") for the latency probe.
"""

import os
import time
import uuid

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.utils import timezone
from rest_framework import status
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

CONSTANT_STATUS = {"task_id": "bare", "status": "SUCCESS", "result": None, "error": None, "progress": None}


@shared_task(name="bench.noop")
def noop() -> None:
    return None


class BareEnqueueView(APIView):
    """POST: publish the no-op task and answer 202 — no authentication, throttle, validation or rows."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def post(self, request):
        return Response({"task_id": noop.delay().id}, status=status.HTTP_202_ACCEPTED)


class BareStatusView(APIView):
    """GET: a constant answer shaped like ours — no authentication, throttle or query."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request, task_id: str):
        return Response(CONSTANT_STATUS)


class StockEnqueueView(APIView):
    """POST: stock token authentication, one Job row saved with the ORM, ``.apply_async()`` of the no-op under its id,
    then the row marked published (left unmarked, the relay would publish it again) — the floor of a durable,
    authenticated enqueue. No validation, throttle or domain row."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def post(self, request):
        from jobs.models import Job

        job = Job.objects.create(task_id=str(uuid.uuid4()), tenant_id=request.user.tenant_id, kind="bench_stock",
                                 task_name=noop.name)  # fmt: skip
        noop.apply_async(task_id=job.task_id)
        Job.objects.filter(pk=job.pk).update(published_at=timezone.now(), publish_count=1)
        return Response({"task_id": job.task_id}, status=status.HTTP_202_ACCEPTED)


class StockStatusView(APIView):
    """GET: stock token authentication and one ORM read of the tenant's job and its result state — the floor of an
    authenticated, tenant-scoped status lookup. No throttle, progress or error decoding."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def get(self, request, task_id: str):
        from jobs.models import Job

        row = (
            Job.objects.filter(tenant_id=request.user.tenant_id, task_id=task_id)
            .values("task_id", "result__status", "result__result")
            .first()
        )
        if row is None:
            raise NotFound()
        return Response({"task_id": row["task_id"], "status": row["result__status"] or "PENDING",
                         "result": row["result__result"], "error": None, "progress": None})  # fmt: skip


if os.environ.get("BENCH_TRACE") == "1":
    import redis

    _trace = redis.Redis.from_url(settings.REDIS_URL)

    @task_prerun.connect(weak=False)
    def _trace_started(task_id=None, **kwargs) -> None:
        _trace.rpush("bench:started", f"{task_id} {time.time()}")

    @task_postrun.connect(weak=False)
    def _trace_done(task_id=None, **kwargs) -> None:
        _trace.rpush("bench:done", task_id)
