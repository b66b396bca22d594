"""The OpenAPI document clients download (/api/schema/) lists every answer an operation can give."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return response.json()


def test_every_post_documents_the_answers_the_body_limit_gives_before_any_view(schema):
    posts = {path: item["post"] for path, item in schema["paths"].items() if "post" in item}

    assert "/api/send-email/" in posts and "/api/auth/token/" in posts
    for path, operation in posts.items():
        assert {"411", "413"} <= operation["responses"].keys(), path
        assert operation["responses"]["411"]["content"]["application/json"]["schema"]["required"] == ["detail"], path
