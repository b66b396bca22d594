from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.idempotency import idempotent
from jobs.openapi import AUTHENTICATED, BODY, IDEMPOTENCY_HEADER, IDEMPOTENT, POST, RETRY_AFTER_HEADER, error_responses
from webhooks.external import external_data_request
from webhooks.serializers import FetchExternalDataAccepted, FetchExternalDataInput


class FetchExternalDataView(APIView):
    @extend_schema(
        request=FetchExternalDataInput,
        responses={202: FetchExternalDataAccepted, **error_responses(*AUTHENTICATED, *BODY, *IDEMPOTENT, *POST)},
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
        description="Fetch JSON from an allowed URL in a task. A host outside FETCH_ALLOWED_HOSTS answers 400 (url).",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = FetchExternalDataInput(data=request.data)
        data.is_valid(raise_exception=True)
        url = data.validated_data["url"]
        job = external_data_request(tenant_id=request.user.tenant_id, user_id=request.user.id, url=url)
        return Response(
            {"task_id": job.task_id, "status": "queued", "url": url, "check_status_at": f"/api/tasks/{job.task_id}/"},
            status=status.HTTP_202_ACCEPTED,
        )
