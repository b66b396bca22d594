"""The webhook endpoint in the OpenAPI document.

webhooks.views.webhook_receive is a plain Django view, so that the signature is checked over the raw body before
anything parses it; drf-spectacular only sees DRF views, so a postprocessing hook adds its operation to the schema.
"""

import copy

from jobs.openapi import DETAIL, ERRORS, FIELD_ERRORS
from webhooks.signatures import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from webhooks.views import PAYLOAD_MAX_DEPTH, TYPE_MAX_LENGTH, WEBHOOK_ID_MAX_LENGTH

PATH = "/api/webhooks/{source}/"
ACCEPTED = "WebhookAccepted"
ACCEPTED_SCHEMA = {
    "type": "object",
    "properties": {
        "webhook_id": {"type": "string", "description": "the delivery's webhook-id"},
        "task_id": {
            "type": "string",
            "nullable": True,
            "description": "the processing job (GET /api/tasks/<task_id>/ for its tenant); null once pruned",
        },
        "event_id": {"type": "integer", "description": "the stored event"},
        "duplicate": {"type": "boolean", "description": "true when this webhook-id was received before"},
    },
    "required": ["webhook_id", "task_id", "event_id", "duplicate"],
}
PARAMETERS = [
    {
        "in": "path",
        "name": "source",
        "schema": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
        "required": True,
        "description": "The webhook source's slug (python manage.py create_webhook_source SLUG).",
    },
    {
        "in": "header",
        "name": ID_HEADER,
        "schema": {"type": "string", "minLength": 1, "maxLength": WEBHOOK_ID_MAX_LENGTH},
        "required": True,
        "description": "The delivery's unique id; a repeated one answers 200 with the first delivery's ids.",
    },
    {
        "in": "header",
        "name": TIMESTAMP_HEADER,
        "schema": {"type": "integer"},
        "required": True,
        "description": "When it was sent, in Unix seconds; further off than WEBHOOKS_TIMESTAMP_TOLERANCE_SECONDS "
        "(default 300) answers 401.",
    },
    {
        "in": "header",
        "name": SIGNATURE_HEADER,
        "schema": {"type": "string"},
        "required": True,
        "description": 'Space-separated "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the base64 part '
        "of the source's whsec_ secret (Standard Webhooks).",
    },
]
REQUEST_BODY = {
    "required": True,
    "description": "The provider's event, verified byte for byte as sent.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"type": {"type": "string", "minLength": 1, "maxLength": TYPE_MAX_LENGTH}},
                "required": ["type"],
                "additionalProperties": True,
            }
        }
    },
}


def _answer(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


RESPONSES = {
    "200": _answer(
        {"$ref": f"#/components/schemas/{ACCEPTED}"},
        "A webhook-id this source sent before: the first delivery's ids; nothing new is stored or enqueued.",
    ),
    "202": _answer({"$ref": f"#/components/schemas/{ACCEPTED}"}, "Stored; a task processes it."),
    "400": _answer(
        FIELD_ERRORS,
        f"The body is not a JSON object with a type, holds what cannot be stored (\\u0000, unpaired surrogates, "
        f"1e999, NaN) or nests deeper than {PAYLOAD_MAX_DEPTH} levels, or webhook-id is longer than "
        f"{WEBHOOK_ID_MAX_LENGTH} or not printable; the field or header is named. Nothing is stored.",
    ),
    "401": _answer(
        FIELD_ERRORS,
        "A signature header missing or malformed, no signature matching, or a timestamp too far off; the header is "
        "named. Nothing is stored.",
    ),
    "404": _answer(DETAIL, "No active webhook source with this name."),
    "411": _answer(ERRORS[411].response, ERRORS[411].description),
    "413": _answer(DETAIL, "The body is larger than WEBHOOKS_MAX_BODY_BYTES (or REQUEST_BODY_MAX_BYTES)."),
    "503": _answer(ERRORS[503].response, ERRORS[503].description),
}


def add_webhook_receive(result: dict, generator, request, public: bool) -> dict:
    """drf-spectacular postprocessing hook: the webhook operation, its answers and the Standard Webhooks headers."""
    operation = {
        "operationId": "webhooks_receive",
        "summary": "Receive a signed webhook",
        "description": "Verify the Standard Webhooks signature over the raw body, store the event, answer; a task "
        "processes it. Authenticated by the signature, not a token.",
        "tags": ["webhooks"],
        "parameters": PARAMETERS,
        "requestBody": REQUEST_BODY,
        "security": [],
        "responses": RESPONSES,
    }
    # A copy each time: what drf-spectacular does to the result afterwards must not reach these module constants.
    result["paths"][PATH] = {"post": copy.deepcopy(operation)}
    result.setdefault("components", {}).setdefault("schemas", {})[ACCEPTED] = copy.deepcopy(ACCEPTED_SCHEMA)
    return result
