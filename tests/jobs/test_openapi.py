"""The OpenAPI document clients download (/api/schema/) lists every answer an operation can give; /api/docs/ shows it
with nothing fetched from elsewhere."""

import re

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_every_post_documents_the_answers_the_body_limit_gives_before_any_view(schema):
    posts = {path: item["post"] for path, item in schema["paths"].items() if "post" in item}

    assert "/api/send-email/" in posts and "/api/auth/token/" in posts
    for path, operation in posts.items():
        assert {"411", "413"} <= operation["responses"].keys(), path
        assert operation["responses"]["411"]["content"]["application/json"]["schema"]["required"] == ["detail"], path


def test_the_docs_page_loads_swagger_ui_from_this_server_alone(client, settings):
    # Production serves collectstatic's copies (make run); tests collect nothing, so WhiteNoise serves from the finders.
    settings.WHITENOISE_USE_FINDERS = True

    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "://" not in html  # no CDN (it was cdn.jsdelivr.net, @latest): the page works offline, on a pinned version
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets), assets
    for url in assets:
        assert url.startswith(settings.STATIC_URL), url
        assert finders.find(url.removeprefix(settings.STATIC_URL)), f"collectstatic would not collect {url}"
        served = client.get(url)
        assert served.status_code == 200, url
        assert int(served["Content-Length"]) > 0, url


@pytest.mark.parametrize(("query", "accept", "status"), [({"format": "xml"}, "*/*", 404), ({}, "text/html", 406)])
def test_the_schemas_errors_are_json_like_every_api_error(client, query, accept, status):
    response = client.get("/api/schema/", query, HTTP_ACCEPT=accept)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_the_schema_is_still_yaml_by_default_and_json_on_request(client):
    assert client.get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert client.get("/api/schema/", {"format": "json"}).json()["openapi"].startswith("3.")
