import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from jobs.middleware import request_too_large

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    """DRF's handler, plus JSON answers for the body limits Django enforces while the body is read."""
    if isinstance(exc, RequestDataTooBig):
        return request_too_large()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        # Django's own answer would be its HTML "Bad Request" page.
        return Response({"detail": f"Bad request body: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)
