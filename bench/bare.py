"""The bare baselines: a no-op task and two DRF views with nothing of ours in them. Bench-only; never in production.

With ``BENCH_TRACE=1`` in a worker's environment, every task's start and end are pushed to Redis lists
(``bench:started`` as "<task id> <unix time>", ``bench:done`` as "<task id>") for the latency probe.
"""

import os
import time

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from rest_framework import status
from rest_framework.permissions import AllowAny
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


if os.environ.get("BENCH_TRACE") == "1":
    import redis

    _trace = redis.Redis.from_url(settings.REDIS_URL)

    @task_prerun.connect(weak=False)
    def _trace_started(task_id=None, **kwargs) -> None:
        _trace.rpush("bench:started", f"{task_id} {time.time()}")

    @task_postrun.connect(weak=False)
    def _trace_done(task_id=None, **kwargs) -> None:
        _trace.rpush("bench:done", task_id)
