from io import BytesIO

import pytest
from django.core.handlers.wsgi import LimitedStream

from tests.conftest import broker_at

pytestmark = pytest.mark.django_db


def test_healthy_when_database_and_broker_answer(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_unavailable_when_the_broker_does_not_answer(client):
    with broker_at("redis://127.0.0.1:1/0"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unavailable"}


def test_head_answers_like_get_for_load_balancers_that_probe_with_it(client):
    assert client.head("/healthz").status_code == 200
    with broker_at("redis://127.0.0.1:1/0"):
        assert client.head("/healthz").status_code == 503


def test_a_body_over_the_limit_is_a_413(client, settings):
    response = client.post("/api/auth/token/", "x" * (settings.REQUEST_BODY_MAX_BYTES + 1), "application/json")

    assert response.status_code == 413


def test_a_chunked_body_a_server_did_not_decode_is_a_411_not_a_silent_empty_body(api):
    # Django's runserver hands a chunked body over as a stream limited to nothing (gunicorn decodes it:
    # tests/hostile/test_chunked_bodies)
    raw = b'2c\r\n{"to_email": "a@example.com", "subject": "s"}\r\n0\r\n\r\n'
    response = api.generic(
        "POST", "/api/send-email/", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": LimitedStream(BytesIO(raw), 0)},
    )  # fmt: skip

    assert response.status_code == 411


def test_health_answers_other_methods_with_405(client):
    assert client.post("/healthz").status_code == 405
