"""OpenAPI pieces the API apps share: the Idempotency-Key header and the refusals every endpoint may answer with.

Documented so that clients (and the schema fuzzing in tests/hostile/) know every status code the API gives.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer

from jobs.idempotency import HEADER, KEY_MAX_LENGTH

IDEMPOTENCY_HEADER = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH, "pattern": "^[ -~]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description="The same key from the same tenant within 24 h answers with the first request's task; no second "
    "job is made. 1 to 255 printable characters.",
)
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before the next request.",
)

DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "what is wrong"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": 'Each wrong field (or header) with a list of messages saying why; "non_field_errors" for the '
    'body as a whole; or a "detail" message when the body could not be read.',
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": True,
}

ERRORS = {
    400: OpenApiResponse(FIELD_ERRORS, description="Invalid input; nothing was changed."),
    401: OpenApiResponse(DETAIL, description="No valid credentials (`Authorization: Token <key>` or a session)."),
    403: OpenApiResponse(DETAIL, description="Signed in, but not a member of a tenant."),
    404: OpenApiResponse(DETAIL, description="Unknown, or another tenant's: the same answer for both."),
    411: OpenApiResponse(DETAIL, description="A chunked body the server did not decode: send a Content-Length."),
    413: OpenApiResponse(DETAIL, description="The body is larger than REQUEST_BODY_MAX_BYTES."),
    415: OpenApiResponse(DETAIL, description="The body is neither JSON nor a form."),
    422: OpenApiResponse(FIELD_ERRORS, description="The Idempotency-Key was already used for another endpoint."),
    429: OpenApiResponse(DETAIL, description="Too many requests from this tenant; see Retry-After."),
    503: OpenApiResponse(DETAIL, description="The database does not answer; retry after Retry-After seconds."),
}
AUTHENTICATED = (401, 403, 429)  # every endpoint that needs a tenant member
BODY = (400, 413, 415)  # every endpoint that reads a body
IDEMPOTENT = (400, 413, 422)  # every POST with the Idempotency-Key header
POST = (411, 413)  # every POST: the body-limit middleware answers these before any view runs


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    # every endpoint reads the database, so any may answer 503 (jobs/exceptions.py)
    return {code: ERRORS[code] for code in sorted({*codes, 503})}


class SchemaView(SpectacularAPIView):
    """/api/schema/: the document as YAML (the default) or JSON (``?format=json``); its errors (an unknown ``format``,
    an ``Accept`` it cannot serve) in JSON like every other API error, not dressed as an OpenAPI document."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(response, "exception", False):
            response.accepted_renderer, response.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return response
