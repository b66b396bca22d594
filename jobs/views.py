import logging

from celery import current_app
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from jobs.middleware import API_PREFIX, api_not_found
from jobs.services import BROKER_ERRORS

logger = logging.getLogger(__name__)


@csrf_exempt  # so that a POST gets require_safe's 405, not a CSRF page
@never_cache
@require_safe  # GET, and HEAD for load balancers that probe with it (the server drops the body)
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker both answer; 503 with each part's state otherwise."""
    parts = {"database": _check_database(), "broker": _check_broker()}
    healthy = all(state == "ok" for state in parts.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **parts}, status=200 if healthy else 503)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "down", and is reported
        logger.warning("Health: database check failed: %s", exc)
        return "unavailable"
    return "ok"


def _check_broker() -> str:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except BROKER_ERRORS as exc:
        logger.warning("Health: broker check failed: %s", exc)
        return "unavailable"
    return "ok"


# --- error pages (config/urls.py handler400, 404, 500): JSON under /api/, Django's pages elsewhere ------------------


def bad_request(request: HttpRequest, exception: Exception):
    """A request Django refuses before any view (a Host header not in ALLOWED_HOSTS, say): JSON under /api/."""
    if request.path.startswith(API_PREFIX):
        detail = "The Host header is not allowed." if isinstance(exception, DisallowedHost) else "Bad request."
        return JsonResponse({"detail": detail}, status=400)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception):
    if request.path.startswith(API_PREFIX):
        return api_not_found()
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest):
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
