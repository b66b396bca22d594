from django.conf import settings
from django.http import JsonResponse


class RequestBodyLimitMiddleware:
    """Refuse a declared body over REQUEST_BODY_MAX_BYTES with 413 before anything reads it.

    Bodies without a Content-Length are bounded by DATA_UPLOAD_MAX_MEMORY_SIZE when read (see the exception handler).
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
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Django reads a body without Content-Length as empty; say so instead of answering "field required".
            return JsonResponse({"detail": "A Content-Length header is required."}, status=411)
        return self.get_response(request)


def request_too_large() -> JsonResponse:
    return JsonResponse(
        {"detail": f"Request body too large; the limit is {settings.REQUEST_BODY_MAX_BYTES} bytes."}, status=413
    )
