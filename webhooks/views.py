"""The webhook endpoint: a plain Django view, so that the signature is checked over the raw body, untouched."""

import json
import logging
import math

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from webhooks import conf
from webhooks.selectors import webhook_source_get_active, webhook_source_secrets
from webhooks.services import webhook_event_receive
from webhooks.signatures import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify

logger = logging.getLogger(__name__)

WEBHOOK_ID_MAX_LENGTH = 255
TYPE_MAX_LENGTH = 200
PAYLOAD_MAX_DEPTH = 64  # providers send a few levels; storing and re-reading deeper documents risks the stack
STORED_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, "content-type", "user-agent")


class BadPayload(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@csrf_exempt
def webhook_receive(request: HttpRequest, source: str) -> JsonResponse:
    """Verify, store, enqueue, answer: 202 for a new delivery, 200 with the first ids for a repeated one."""
    if request.method != "POST":
        response = JsonResponse({"detail": f"Method {request.method} not allowed."}, status=405)
        response["Allow"] = "POST"
        return response
    webhook_source = webhook_source_get_active(slug=source)
    if webhook_source is None:
        return JsonResponse({"detail": "No webhook source with this name."}, status=404)

    limit = conf.webhooks_max_body_bytes()
    too_large = JsonResponse({"detail": f"Request body too large; the limit is {limit} bytes."}, status=413)
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return too_large
        body = request.body
    except RequestDataTooBig:
        return too_large
    if len(body) > limit:
        return too_large

    webhook_id = request.headers.get(ID_HEADER, "")
    if len(webhook_id) > WEBHOOK_ID_MAX_LENGTH or not webhook_id.isprintable():
        return _error(400, ID_HEADER, f"At most {WEBHOOK_ID_MAX_LENGTH} printable characters.")
    try:
        verify(
            secrets=webhook_source_secrets(source=webhook_source),
            headers=request.headers,
            body=body,
            tolerance=conf.webhooks_timestamp_tolerance_seconds(),
        )
    except SignatureError as exc:
        logger.warning("Webhook %s/%s refused: %s: %s", source, webhook_id or "-", exc.header, exc.message)
        return _error(401, exc.header, exc.message)

    try:
        payload = _parse(body)
    except BadPayload as exc:
        return _error(400, exc.field, exc.message)

    # Kept for the record; PostgreSQL's jsonb cannot hold U+0000, so a NUL a sender put in a header is replaced.
    headers = {
        name: request.headers[name].replace("\x00", "\ufffd") for name in STORED_HEADERS if name in request.headers
    }
    event, created = webhook_event_receive(
        source=webhook_source, webhook_id=webhook_id, event_type=payload["type"], payload=payload, headers=headers
    )
    return JsonResponse(
        {"webhook_id": event.webhook_id, "task_id": event.job_id, "event_id": event.pk, "duplicate": not created},
        status=202 if created else 200,
    )


def _parse(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadPayload("body", "Must be a JSON document (UTF-8).") from None
    if not isinstance(payload, dict):
        raise BadPayload("body", "Must be a JSON object.")
    _check_storable(payload)
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > TYPE_MAX_LENGTH:
        raise BadPayload("type", f"Required: the event type, a string of 1 to {TYPE_MAX_LENGTH} characters.")
    return payload


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: PostgreSQL's jsonb has no Infinity
        raise ValueError(f"{text} is out of range")
    return value


def _check_storable(payload: dict) -> None:
    """Refuse what PostgreSQL's jsonb cannot hold (U+0000, lone surrogates) and nesting too deep to store safely.

    Iterative, so that a deeply nested document cannot exhaust the stack here either.
    """
    pending = [(payload, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > PAYLOAD_MAX_DEPTH:
            raise BadPayload("body", f"Must not nest objects and arrays more than {PAYLOAD_MAX_DEPTH} levels deep.")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        else:
            pending.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadPayload("body", "Must not contain \\u0000 characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPayload("body", "Must not contain unpaired surrogates (\\ud800-\\udfff).") from None


def _error(status: int, field: str, message: str) -> JsonResponse:
    return JsonResponse({field: [message], "detail": f"{field}: {message}"}, status=status)
