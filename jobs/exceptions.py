import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from jobs.middleware import request_too_large

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    """DRF's handler, plus JSON answers for the body limits Django enforces while the body is read."""
    if isinstance(exc, RequestDataTooBig):
        return request_too_large()
    if isinstance(exc, TooManyFieldsSent):
        # Django's own answer would be its HTML "Bad Request" page.
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Response({"detail": f"Too many form fields; the limit is {limit}."}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)
