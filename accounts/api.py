from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.serializers import TokenObtainInput, TokenOutput
from accounts.services import token_obtain
from jobs.openapi import BODY, POST, RETRY_AFTER_HEADER, error_responses


class TokenObtainView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenObtainInput,
        responses={200: TokenOutput, **error_responses(*BODY, *POST, 429)},
        parameters=[RETRY_AFTER_HEADER],
        description="A 400 also answers wrong credentials.",
    )
    def post(self, request: Request) -> Response:
        data = TokenObtainInput(data=request.data)
        data.is_valid(raise_exception=True)
        token = token_obtain(**data.validated_data)
        if token is None:
            return Response(
                {"detail": "Unable to log in with these credentials.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response({"token": token})
