import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from jobs.middleware import API_PREFIX, request_too_large

logger = logging.getLogger(__name__)

# Long enough for a database restart or failover to finish, short enough that a client's retry is not kept waiting.
DATABASE_RETRY_AFTER_SECONDS = 5


# SQLSTATE classes of a server that is away, not of a statement that went wrong: connection exceptions (08),
# shutdown or restart (57P01-57P03), too many connections (53300). A statement timeout, a full disk or a missing
# table stay 500s with their traceback: retrying will not help, and someone should be told.
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
UNAVAILABLE_SQLITE_MESSAGES = ("database is locked", "unable to open database file", "disk i/o error")


def database_unavailable(exc: Exception) -> bool:
    """True when ``exc`` says the database could not be reached or is not taking work right now."""
    if isinstance(exc, InterfaceError):
        return True  # the connection is closed or broken
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    if type(cause).__module__.startswith("sqlite3"):
        return str(cause).lower().startswith(UNAVAILABLE_SQLITE_MESSAGES)
    return True  # no answer from a server at all: refused, timed out, reset


UNAVAILABLE_DETAIL = f"The database is unavailable; try again in {DATABASE_RETRY_AFTER_SECONDS} seconds."
RETRY_AFTER = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}
UNAVAILABLE_PAGE = (
    "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
    f"<p>The database is not answering. Please try again in {DATABASE_RETRY_AFTER_SECONDS} seconds.</p>"
)


def database_unavailable_response(request, exc: Exception) -> HttpResponse:
    """The 503 with Retry-After for a request the database could not serve (JSON under /api/, a short page elsewhere),
    logged in one line: down, restarting or out of connections, the client should retry."""
    reason = " ".join(str(exc).split()) or type(exc).__name__  # psycopg's messages run over several lines
    logger.warning("Database unavailable for %s %s: %s", request.method, request.path, reason)
    if request.path_info.startswith(API_PREFIX):
        return JsonResponse({"detail": UNAVAILABLE_DETAIL}, status=503, headers=RETRY_AFTER)
    return HttpResponse(UNAVAILABLE_PAGE, status=503, headers=RETRY_AFTER)


class DatabaseUnavailableMiddleware:
    """The same 503 for views outside DRF (incoming webhooks, pages) while the database does not answer: a webhook
    provider retries a 503 as it would a 500, but an operator is not paged with a traceback for an outage they
    already know about."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return database_unavailable_response(request, exception) if database_unavailable(exception) else None


def api_exception_handler(exc, context):
    """DRF's handler, plus JSON answers for the body limits Django enforces while the body is read and a 503 while
    the database does not answer."""
    if isinstance(exc, RequestDataTooBig):
        return request_too_large()
    if isinstance(exc, TooManyFieldsSent):
        # Django's own answer would be its HTML "Bad Request" page.
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Response({"detail": f"Too many form fields; the limit is {limit}."}, status=status.HTTP_400_BAD_REQUEST)
    if database_unavailable(exc):
        return database_unavailable_response(context["request"], exc)
    return exception_handler(exc, context)
