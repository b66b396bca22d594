"""Property-based fuzzing of the public OpenAPI schema: whatever a client sends, the API never answers 5xx.

Schemathesis reads /api/schema/ from the app itself and calls every operation in-process (WSGI) with generated
requests — valid ones and deliberately broken ones (wrong types, missing fields, odd strings, NUL bytes) — as a real
tenant user, and checks each answer: never a server error, and status code, content type and body as documented.
Enqueueing endpoints only write Job rows and publish to the test Redis (no worker runs here; the queue is purged).
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.celery import app as celery_app
from tests.factories import TenantFactory, UserFactory, token_for

MAX_EXAMPLES = 40  # per operation; with the coverage cases the whole file runs in well under a minute and a half

# Loaded at collection from the app itself: the schema under test is the one clients download. Django's WSGI handler,
# not config.wsgi's module: importing that would give every test in this process the web processes' Redis limits.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    allow_x00=True,
)

# Strings that break things below an API (PostgreSQL refuses U+0000 in text) or confuse paths; random generation
# rarely reaches them, so they are mixed in. What this transport cannot carry (a NUL in the path reaches Django
# mangled; a lone surrogate cannot be serialized) is covered by test_bad_input.py.
HOSTILE_TEXT = ["\x00", "a\x00b", "\u202e", "😀", "..", "9" * 40, " ", "%00", "\\"]


def _hostile_variant(values: dict | None, texts: list[str]) -> st.SearchStrategy:
    """The values as generated, or with one of their strings swapped for a hostile one."""
    names = [name for name, value in (values or {}).items() if isinstance(value, str)]
    if not names:
        return st.just(values)
    swapped = st.tuples(st.sampled_from(names), st.sampled_from(texts)).map(lambda pick: {**values, pick[0]: pick[1]})
    return st.one_of(st.just(values), swapped)


@schema.hook
def flatmap_case(context, case):
    body = _hostile_variant(case.body, HOSTILE_TEXT) if isinstance(case.body, dict) else st.just(case.body)
    path_parameters = _hostile_variant(case.path_parameters, HOSTILE_TEXT)

    def rebuild(parts):
        case.body, case.path_parameters = parts
        return case

    return st.tuples(body, path_parameters).map(rebuild)


@pytest.fixture
def auth_header(db) -> dict[str, str]:
    """A real tenant user's token; Django's end-of-request connection cleanup is kept away from the test's
    transaction (the WSGI app is called directly, not through Django's test client, which does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    user = UserFactory(tenant=TenantFactory(name="Fuzz"))
    yield {"Authorization": f"Token {token_for(user)}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    celery_app.control.purge()  # the jobs the fuzzer enqueued: no worker will ever take them


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
@pytest.mark.django_db
def test_no_request_makes_the_api_fail(case, auth_header):
    case.call_and_validate(
        headers=auth_header,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
