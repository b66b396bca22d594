"""Hostile input, one class at a time: every POST endpoint answers 4xx JSON that names the field, and changes nothing.

Each class here broke something once (a 500, or an HTML page instead of JSON) or is the kind that does: NUL bytes
(PostgreSQL refuses them in text), lone surrogates (they cannot be encoded), JSON nested deep enough to exhaust the
stack, numbers too large to store, bodies of the wrong shape, type or size, odd headers and cookies.
"""

import json
import time
import uuid

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from jobs.models import IdempotencyKey, Job
from notifications.models import OutboundEmail
from reports.models import Report
from tests.factories import TenantFactory
from webhooks.models import WebhookEvent, WebhookSource
from webhooks.signatures import sign

pytestmark = pytest.mark.django_db

# Each tenant endpoint that reads a body: a valid body, and its fields.
SEND_EMAIL = ("/api/send-email/", {"to_email": "ada@example.com", "subject": "Hello", "body": "Hi Ada"})
GENERATE_REPORT = ("/api/reports/generate/", {"report_type": "users"})
FETCH_EXTERNAL = ("/api/fetch-external-data/", {"url": "https://api.example.com/data.json"})
BODY_ENDPOINTS = [SEND_EMAIL, GENERATE_REPORT, FETCH_EXTERNAL]
FIELDS = [(path, valid, field) for path, valid in BODY_ENDPOINTS for field in valid]
TOKEN = ("/api/auth/token/", {"email": "ada@example.com", "password": "correct-horse-battery"})
BATCH_PROCESS = ("/api/users/batch-process/", {})  # a body, but no fields
# Every POST endpoint of the contract, with a body it would accept (webhooks: see the end of this file).
POST_PATHS = [path for path, _ in BODY_ENDPOINTS] + [
    BATCH_PROCESS[0],
    "/api/tasks/5b0e2f4c-2d4c-4c8e-9a51-0d3f1c6b7a10/cancel/",  # no such job; a fixed id keeps the test ids stable
    "/api/auth/token/",
]


def assert_nothing_changed() -> None:
    assert not Job.objects.exists()
    assert not OutboundEmail.objects.exists()
    assert not Report.objects.exists()
    assert not WebhookEvent.objects.exists()
    assert not IdempotencyKey.objects.exists()


def post_raw(client: APIClient, path: str, body: bytes | str, content_type: str = "application/json", **extra):
    return client.generic("POST", path, body, content_type=content_type, **extra)


def assert_refused(response, status: int = 400, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    if field is not None:
        assert field in body, body
        assert body[field] and all(isinstance(message, str) and message for message in body[field]), body
    else:
        assert body.get("detail"), body
    return body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- fields -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "valid", "field"), FIELDS)
def test_a_nul_byte_in_a_field_is_refused_naming_the_field(api, path, valid, field):
    response = api.post(path, {**valid, field: "bad\x00value"}, format="json")

    assert_refused(response, field=field)
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid", "field"), FIELDS)
def test_a_lone_surrogate_in_a_field_is_refused_naming_the_field(api, path, valid, field):
    # JSON may escape a lone surrogate; Python parses it into a str that cannot be encoded as UTF-8
    raw = json.dumps({**valid, field: "bad \ud800 value"})
    assert "\\ud800" in raw

    response = post_raw(api, path, raw)

    assert_refused(response, field=field)
    assert_nothing_changed()


def test_an_unknown_report_type_with_a_lone_surrogate_is_echoed_escaped(api):
    response = post_raw(api, "/api/reports/generate/", '{"report_type": "weekly\\ud800"}')

    [message] = assert_refused(response, field="report_type")["report_type"]
    assert "weekly\\ud800" in message and "users" in message and "activity" in message
    assert_nothing_changed()


@pytest.mark.parametrize("value", [["users"], {"type": "users"}, 1, True, None])
def test_report_type_must_be_a_string(api, value):
    response = api.post("/api/reports/generate/", {"report_type": value}, format="json")

    assert_refused(response, field="report_type")
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid", "field"), FIELDS)
@pytest.mark.parametrize("value", [[], {}, True, None], ids=["list", "object", "bool", "null"])
def test_a_field_of_the_wrong_type_is_refused_naming_the_field(api, path, valid, field, value):
    response = api.post(path, {**valid, field: value}, format="json")

    assert_refused(response, field=field)
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid", "field"), FIELDS + [(*TOKEN, field) for field in TOKEN[1]])
@pytest.mark.parametrize("value", [5, 1.5], ids=["integer", "float"])
def test_a_number_for_a_string_field_is_refused_not_turned_into_a_string(api, path, valid, field, value):
    response = api.post(path, {**valid, field: value}, format="json")

    [message] = assert_refused(response, field=field)[field]
    assert "string" in message, message
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid"), BODY_ENDPOINTS)
def test_an_empty_body_names_every_required_field(api, path, valid):
    response = post_raw(api, path, b"")

    body = assert_refused(response, field=next(iter(valid)))
    assert set(valid) <= set(body)
    assert_nothing_changed()


def test_a_fetch_of_any_host_while_none_is_allowed_is_refused_naming_the_url(api):
    for url in ["https://example.com/x.json", "http://127.0.0.1/", "file:///etc/passwd", "https://[::1]:99999/", "x"]:
        response = api.post("/api/fetch-external-data/", {"url": url}, format="json")
        assert_refused(response, field="url")
    assert_nothing_changed()


# --- whole bodies -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "valid"), [*BODY_ENDPOINTS, BATCH_PROCESS])
@pytest.mark.parametrize(
    "raw", ['["a"]', "[]", '"a string"', "42", "null"], ids=["list", "empty-list", "string", "number", "null"]
)
def test_a_json_body_that_is_not_an_object_is_refused(api, path, valid, raw):
    response = post_raw(api, path, raw)

    assert_refused(response, field="non_field_errors")
    assert_nothing_changed()


@pytest.mark.parametrize("path", [path for path, _ in BODY_ENDPOINTS] + ["/api/auth/token/"])
@pytest.mark.parametrize(
    "raw",
    [
        b'{"subject": "unterminated',
        b"\xff\xfe{}",  # not UTF-8
        b'{"subject": NaN}',
        b'{"report_type": 1' + b"0" * 5000 + b"}",  # more digits than Python converts
        nested(5000).encode(),  # deeper than the parser's stack
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["truncated", "invalid-utf8", "nan", "huge-integer", "nested-5000", "nested-100000"],
)
def test_a_body_that_is_not_valid_json_is_refused_with_a_reason(api, path, raw):
    response = post_raw(api, path, raw)

    assert "JSON parse error" in assert_refused(response)["detail"]
    assert_nothing_changed()


def test_too_many_form_fields_answer_json(api):
    form = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    response = post_raw(api, "/api/send-email/", form, content_type="application/x-www-form-urlencoded")

    assert assert_refused(response)["detail"] == f"Too many form fields; the limit is {len(form.split('&')) - 1}."
    assert_nothing_changed()


# --- size, media type, method -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", POST_PATHS)
def test_a_body_over_the_limit_answers_413(api, path):
    oversize = json.dumps({"body": "x" * settings.REQUEST_BODY_MAX_BYTES})

    response = post_raw(api, path, oversize)

    assert "limit" in assert_refused(response, status=413)["detail"]
    assert_nothing_changed()


@pytest.mark.parametrize("path", [path for path, _ in BODY_ENDPOINTS])
def test_a_form_over_the_limit_answers_413(api, path):
    response = post_raw(
        api, path, "body=" + "x" * settings.REQUEST_BODY_MAX_BYTES, content_type="application/x-www-form-urlencoded"
    )

    assert_refused(response, status=413)
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid"), BODY_ENDPOINTS)
def test_a_body_without_content_length_is_never_read(api, path, valid):
    # WSGI gives a body without Content-Length (chunked) as empty: an oversize body cannot slip in unbounded; the
    # request is answered as one without a body.
    body = json.dumps({**valid, "padding": "x" * (2 * settings.REQUEST_BODY_MAX_BYTES)})

    response = post_raw(api, path, body, CONTENT_LENGTH="")

    assert_refused(response, field=next(iter(valid)))
    assert_nothing_changed()


def test_a_content_length_that_is_not_a_number_is_refused(api):
    response = post_raw(api, "/api/send-email/", b"{}", CONTENT_LENGTH="lots")

    assert_refused(response, status=400)
    assert_nothing_changed()


@pytest.mark.parametrize(("path", "valid"), [*BODY_ENDPOINTS, TOKEN, BATCH_PROCESS])
@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "multipart/form-data; boundary=x", ""])
def test_an_unsupported_media_type_answers_415(api, path, valid, content_type):
    response = post_raw(api, path, json.dumps(valid), content_type=content_type)

    assert "media type" in assert_refused(response, status=415)["detail"]
    assert_nothing_changed()


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_a_method_the_endpoint_does_not_take_answers_405(api, path, method):
    response = api.generic(method, path, "{}", content_type="application/json")

    assert f'"{method}" not allowed' in assert_refused(response, status=405)["detail"]
    assert "POST" in response["Allow"]
    assert_nothing_changed()


def test_an_unknown_api_path_answers_json_404(api):
    for path in ["/api/nothing-here/", "/api/reports/not-a-number/", "/api/reports/1/download/extra/"]:
        assert assert_refused(api.get(path), status=404) == {"detail": "Not found."}


@override_settings(DEBUG=True)
def test_an_unknown_api_path_answers_json_404_with_debug_on_too(api):
    # Django answers its HTML debug page for an unmatched path when DEBUG is on, whatever handler404 says
    for path in ["/api/nothing/", "/api/reports/not-a-number/", "/api/nothing"]:
        assert assert_refused(api.get(path), status=404) == {"detail": "Not found."}
    # a known path without its slash is still redirected to it
    response = api.get("/api/reports")
    assert response.status_code == 308 and response["Location"] == "/api/reports/"


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_to_a_path_missing_its_slash_is_redirected_with_308_and_arrives_as_a_post(api, debug):
    # a 301 is followed with a GET (a 405), and with DEBUG on Django refused such a POST with a 500
    with override_settings(DEBUG=debug):
        redirect = api.post("/api/send-email", SEND_EMAIL[1], format="json")
        followed = api.post("/api/send-email", SEND_EMAIL[1], format="json", follow=True)

    assert (redirect.status_code, redirect["Location"]) == (308, "/api/send-email/")
    assert followed.status_code == 202, followed.content
    assert OutboundEmail.objects.count() == 1


# --- ids in the path --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["abc\x00def", "\x00", "9" * 5000, "ü" * 300, "%00"])
def test_an_odd_task_id_answers_the_same_404_as_an_unknown_one(api, task_id):
    unknown = api.get(f"/api/tasks/{uuid.uuid4()}/").json()

    assert assert_refused(api.get(f"/api/tasks/{task_id}/"), status=404) == unknown
    assert assert_refused(api.post(f"/api/tasks/{task_id}/cancel/"), status=404) == unknown


@pytest.mark.parametrize("report_id", ["0", "9" * 30, "9223372036854775808"])
def test_a_report_id_out_of_range_answers_404(api, report_id):
    assert_refused(api.get(f"/api/reports/{report_id}/"), status=404)
    assert_refused(api.get(f"/api/reports/{report_id}/download/"), status=404)


# --- headers and cookies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a\x00b", "tab\there", "k" * 256], ids=["empty", "nul", "control", "too-long"])
@pytest.mark.parametrize(("path", "valid"), BODY_ENDPOINTS[:2] + [("/api/users/batch-process/", {})])
def test_a_bad_idempotency_key_is_refused_naming_the_header(api, path, valid, key):
    response = api.post(path, valid, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert_refused(response, field="Idempotency-Key")
    assert_nothing_changed()


@pytest.mark.parametrize("token", ["abc\x00def", "\x00" * 40, "é" * 40, "x" * 5000])
def test_a_malformed_token_answers_401(db, token):
    client = APIClient()

    response = client.post("/api/send-email/", SEND_EMAIL[1], format="json", HTTP_AUTHORIZATION=f"Token {token}")

    assert_refused(response, status=401)
    assert_nothing_changed()


@pytest.mark.parametrize("session_key", ["abcdefgh\x00ijklmnop", '"abcdefgh\\000ijklmnop"', "ABCDEFGH-not-a-key"])
def test_a_session_cookie_that_cannot_be_a_session_is_no_session(db, session_key):
    # A quoted cookie may spell a NUL as \000: any browser-side script could send it, to any page.
    client = APIClient()
    cookie = {"HTTP_COOKIE": f"{settings.SESSION_COOKIE_NAME}={session_key}"}

    assert_refused(client.get("/api/reports/", **cookie), status=401)
    page = client.get("/reports/", **cookie)
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")


def test_a_host_header_not_allowed_answers_json_400_under_the_api(api, client):
    response = api.get("/api/tasks/abc/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json() == {"detail": "The Host header is not allowed."}
    assert client.get("/reports/", HTTP_HOST="evil.example")["Content-Type"].startswith("text/html")  # pages: Django's


def test_a_valid_request_after_all_that_still_works(api):
    # the refusals above leave the tenant's API usable: nothing was half-written
    assert api.post("/api/reports/generate/", {"report_type": "users"}, format="json").status_code == 202
    celery_app.control.purge()


# --- incoming webhooks (a plain Django view over the raw body) ------------------------------------------------------


@pytest.fixture
def billing(db) -> WebhookSource:
    TenantFactory(name="Acme")
    source = WebhookSource.objects.create(slug="billing")
    yield source
    celery_app.control.purge()  # what the accepted deliveries enqueued; no worker runs here


def deliver(source: WebhookSource, body: bytes, *, webhook_id: str | None = None, environ=None, **headers):
    webhook_id = webhook_id if webhook_id is not None else f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    signature = sign(secret=source.signing_secret, webhook_id=webhook_id, timestamp=timestamp, body=body)
    signed = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    return APIClient().generic(
        "POST",
        f"/api/webhooks/{source.slug}/",
        body,
        content_type="application/json",
        headers={**signed, **headers},
        **(environ or {}),
    )


def _deep(depth: int) -> bytes:
    return ('{"type": "x", "data": ' + "[" * depth + "]" * depth + "}").encode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"type": "x", "data": "nul \\u0000 inside"}', "body"),
        (b'{"type": "x", "data": {"k\\u0000": 1}}', "body"),
        (b'{"type": "x", "data": "lone \\ud800 surrogate"}', "body"),
        (b'{"type": "x", "data": {"\\udfff": 1}}', "body"),
        (b'{"type": "renewed\\ud800"}', "body"),
        (b'{"type": "x", "data": "\xff\xfe not utf-8"}', "body"),
        (b'["type", "x"]', "body"),
        (b'"type"', "body"),
        (b"42", "body"),
        (b"", "body"),
        (b'{"type": "x", "amount": 1e999}', "body"),  # jsonb has no Infinity
        (b'{"type": "x", "amount": NaN}', "body"),
        (b'{"type": "x", "amount": 1' + b"0" * 5000 + b"}", "body"),
        (_deep(65), "body"),  # deeper than stored payloads may nest
        (_deep(900), "body"),  # parses, but walking or storing it recursively would exhaust the stack
        (_deep(20_000), "body"),  # deeper than the parser's stack (and under the 64 KiB webhook limit)
        (b'{"type": 42}', "type"),
        (b'{"data": {}}', "type"),
        (b'{"type": ""}', "type"),
    ],
    ids=[
        "nul-in-value", "nul-in-key", "surrogate-in-value", "surrogate-in-key", "surrogate-in-type", "invalid-utf8",
        "list", "string", "number", "empty", "infinity", "nan", "huge-integer", "nested-65", "nested-900",
        "nested-20000", "type-not-a-string", "type-missing", "type-empty",
    ],
)  # fmt: skip
def test_a_signed_webhook_with_a_bad_payload_is_refused_naming_what_is_wrong(billing, body, field):
    response = deliver(billing, body)

    assert_refused(response, field=field)
    assert_nothing_changed()


def test_a_signed_webhook_with_large_but_storable_values_is_accepted(billing):
    body = json.dumps({"type": "x", "data": {"n": 10**300, "f": 1.5e308, "deep": [[[[["ok"]]]]], "s": "😀"}})

    response = deliver(billing, body.encode())

    assert response.status_code == 202, response.content
    event = WebhookEvent.objects.get()
    assert event.payload["data"]["n"] == 10**300 and event.payload["data"]["s"] == "😀"


def test_a_webhook_id_with_a_nul_byte_is_refused_naming_the_header(billing):
    response = deliver(billing, b'{"type": "x"}', webhook_id="msg_\x00_1")

    assert_refused(response, field="webhook-id")
    assert_nothing_changed()


def test_a_nul_byte_in_a_stored_header_is_replaced_not_a_500(billing):
    response = deliver(billing, b'{"type": "x"}', **{"user-agent": "sender\x00/1.0"})

    assert response.status_code == 202, response.content
    assert WebhookEvent.objects.get().headers["user-agent"] == "sender\ufffd/1.0"


def test_an_oversize_webhook_answers_413_with_or_without_content_length(billing):
    oversize = b'{"type": "x", "data": "' + b"x" * settings.REQUEST_BODY_MAX_BYTES + b'"}'

    assert_refused(deliver(billing, oversize), status=413)
    # without Content-Length nothing is read: the signature over the empty body does not match the one sent
    assert_refused(deliver(billing, oversize, environ={"CONTENT_LENGTH": ""}), status=401, field="webhook-signature")
    assert_nothing_changed()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_webhook_method_other_than_post_answers_405(billing, method):
    response = APIClient().generic(method, "/api/webhooks/billing/")

    assert_refused(response, status=405)
    assert response["Allow"] == "POST"
