from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.idempotency import idempotent
from notifications.serializers import SendEmailAccepted, SendEmailInput
from notifications.services import email_request

IDEMPOTENCY_HEADER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)


class SendEmailView(APIView):
    @extend_schema(request=SendEmailInput, responses={202: SendEmailAccepted}, parameters=[IDEMPOTENCY_HEADER])
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
