from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.idempotency import idempotent
from jobs.openapi import AUTHENTICATED, BODY, IDEMPOTENCY_HEADER, IDEMPOTENT, POST, RETRY_AFTER_HEADER, error_responses
from notifications.serializers import SendEmailAccepted, SendEmailInput
from notifications.services import email_request


class SendEmailView(APIView):
    @extend_schema(
        request=SendEmailInput,
        responses={202: SendEmailAccepted, **error_responses(*AUTHENTICATED, *BODY, *IDEMPOTENT, *POST)},
        parameters=[IDEMPOTENCY_HEADER, RETRY_AFTER_HEADER],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = SendEmailInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = email_request(tenant_id=request.user.tenant_id, user_id=request.user.id, **data.validated_data)
        return Response(
            {
                "task_id": email.job_id,
                "status": "queued",
                "message": "Email will be sent shortly.",
                "email_id": email.pk,
            },
            status=status.HTTP_202_ACCEPTED,
        )
