import logging
from io import BytesIO

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.middleware.common import CommonMiddleware
from django.utils.http import escape_leading_slashes

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


class RequestBodyLimitMiddleware:
    """Refuse a declared body over REQUEST_BODY_MAX_BYTES with 413 before anything reads it.

    A chunked body (no Content-Length) is read here, at most one byte past the limit, when the server says it decoded
    the chunks (``wsgi.input_terminated``, as gunicorn does): over the limit, 413; within it, the request goes on as if
    it had declared its length (Django alone would read it as empty). A server that hands over the raw chunks or
    nothing (Django's runserver) gets 411: send a Content-Length.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.limit = settings.REQUEST_BODY_MAX_BYTES

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header."}, status=400)
        if length > self.limit:
            return request_too_large()
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self._chunked(request)
        return self.get_response(request)

    def _chunked(self, request):
        if not request.environ.get("wsgi.input_terminated"):
            return JsonResponse({"detail": "A Content-Length header is required."}, status=411)
        try:
            body = request.environ["wsgi.input"].read(self.limit + 1)
        except Exception as exc:  # noqa: BLE001 - what the server raises for bad chunk framing or a client gone
            # (gunicorn: InvalidChunkSize, ChunkMissingTerminator, NoMoreData); the server closes the connection
            logger.info("Unreadable chunked body for %s %s: %r", request.method, request.path, exc)
            return JsonResponse({"detail": "Malformed or incomplete chunked body."}, status=400)
        if len(body) > self.limit:
            return request_too_large()
        request.META["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(BytesIO(body), len(body))
        return self.get_response(request)


def _permanent_redirect_keeping_the_request(url: str) -> HttpResponsePermanentRedirect:
    return HttpResponsePermanentRedirect(url, preserve_request=True)


class SlashRedirectMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, with a path missing its slash redirected by a 308 instead of a 301.

    Clients follow a 301 to a POST with a GET, so a webhook provider, or a client, set up without the slash got a 405;
    a 308 keeps the method and the body. For the same reason Django's DEBUG-only error for such a POST (raised because
    a 301 would lose it) is not needed.
    """

    response_redirect_class = staticmethod(_permanent_redirect_keeping_the_request)

    def get_full_path_with_slash(self, request) -> str:
        return escape_leading_slashes(request.get_full_path(force_append_slash=True))


class ApiNotFoundMiddleware:
    """A JSON 404 for a path under /api/ that no route matches, with DEBUG on as well.

    With DEBUG on Django answers its HTML debug page instead of calling handler404. A catch-all route would do it too,
    but would make every /api/ path valid and so end CommonMiddleware's redirect of a known path missing its slash;
    this runs inside CommonMiddleware, which still sees the 404 and redirects.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # resolver_match stays None only when no route matched: a view's own 404 (a detail message) is kept
        if response.status_code == 404 and request.resolver_match is None and request.path_info.startswith(API_PREFIX):
            return api_not_found()
        return response


def api_not_found() -> JsonResponse:
    return JsonResponse({"detail": "Not found."}, status=404)


def request_too_large() -> JsonResponse:
    return JsonResponse(
        {"detail": f"Request body too large; the limit is {settings.REQUEST_BODY_MAX_BYTES} bytes."}, status=413
    )
