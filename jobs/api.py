from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.idempotency import idempotent
from jobs.openapi import AUTHENTICATED, IDEMPOTENCY_HEADER, IDEMPOTENT, POST, RETRY_AFTER_HEADER, error_responses
from jobs.selectors import job_get, job_status, job_status_get
from jobs.serializers import TaskStatusOutput
from jobs.services import JobNotCancellable, job_cancel

NOT_FOUND = "No task with this id."
CANCEL_REFUSED = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "status": {"type": "string"}},
    "required": ["detail", "status"],
}


def _or_404(found):
    if found is None:
        raise NotFound(NOT_FOUND)  # the same answer whether it does not exist or is another tenant's
    return found


def _tenant_job_or_404(request: Request, task_id: str):
    return _or_404(job_get(tenant_id=request.user.tenant_id, task_id=task_id))


class TaskStatusView(APIView):
    @extend_schema(
        responses={200: TaskStatusOutput, **error_responses(*AUTHENTICATED, 404)}, parameters=[RETRY_AFTER_HEADER]
    )
    def get(self, request: Request, task_id: str) -> Response:
        return Response(_or_404(job_status_get(tenant_id=request.user.tenant_id, task_id=task_id)))


class TaskCancelView(APIView):
    @extend_schema(
        request=None,
        responses={
            202: TaskStatusOutput,
            **error_responses(*AUTHENTICATED, *IDEMPOTENT, *POST, 404),
            409: OpenApiResponse(CANCEL_REFUSED, description="Finished, or running and not stoppable; `status` says."),
        },
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
    )
    @idempotent
    def post(self, request: Request, task_id: str) -> Response:
        job = _tenant_job_or_404(request, task_id)
        try:
            job = job_cancel(job=job, by_user_id=request.user.id)
        except JobNotCancellable as exc:
            return Response({"detail": str(exc), "status": exc.status}, status=status.HTTP_409_CONFLICT)
        job = job_get(tenant_id=request.user.tenant_id, task_id=task_id)
        return Response(job_status(job=job), status=status.HTTP_202_ACCEPTED)
