import logging

from django.core.exceptions import RequestDataTooBig
from rest_framework.views import exception_handler

from jobs.middleware import request_too_large

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    """DRF's handler, plus 413 for bodies that turned out too large while being read."""
    if isinstance(exc, RequestDataTooBig):
        return request_too_large()
    return exception_handler(exc, context)
