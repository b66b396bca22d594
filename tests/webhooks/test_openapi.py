"""The webhook endpoint, a plain Django view, is in the OpenAPI document with its answers and headers."""

import pytest

from tests.webhooks.conftest import post_delivery, renewal, sign_delivery

pytestmark = pytest.mark.django_db


def test_the_webhook_endpoint_is_documented_with_every_answer_and_the_signature_headers(schema):
    operation = schema["paths"]["/api/webhooks/{source}/"]["post"]

    assert operation["responses"].keys() == {"200", "202", "400", "401", "404", "411", "413", "503"}
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers.keys() == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(header["required"] for header in headers.values())
    assert operation["security"] == []  # the signature authenticates it, not a token
    assert "type" in operation["requestBody"]["content"]["application/json"]["schema"]["required"]


def test_an_accepted_delivery_answers_what_the_schema_documents(client, schema, billing_source):
    documented = schema["components"]["schemas"]["WebhookAccepted"]
    assert schema["paths"]["/api/webhooks/{source}/"]["post"]["responses"]["202"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/WebhookAccepted"}

    response = post_delivery(client, sign_delivery(billing_source.signing_secret, renewal("acme")))

    assert response.status_code == 202, response.content
    assert response.json().keys() == documented["properties"].keys() == set(documented["required"])
