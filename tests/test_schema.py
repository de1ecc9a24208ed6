"""The OpenAPI schema and docs, and the cheap health endpoint."""

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_api(api):
    response = api.get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/img2img",
        "/api/generations/",
        "/api/generations/{id}/",
        "/api/generations/{id}/cancel/",
        "/api/generations/{id}/images/{index}.png",
    ):
        assert path in schema["paths"], path
    body = schema["paths"]["/api/img2img"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_the_schema_names_the_web_budgets_answers(api):
    """Issue 51: an operation that takes a body can be cut off (408) or find the process at its
    bound (503); one that makes a picture where it is answered can find the gate full (429 for
    the user's share, 503 for the process'): each documented, with its Retry-After."""
    paths = api.get("/api/schema/", headers={"Accept": "application/json"}).json()["paths"]
    gated = {
        ("/sdapi/v1/extra-single-image", "post"): {"408", "429", "503"},
        ("/api/masks/effective", "post"): {"408", "429", "503"},
        ("/api/img2img", "post"): {"408", "429", "503"},
        ("/api/generations/{id}/regenerated.png", "get"): {"429", "503"},
        ("/api/links/{token}", "get"): {"429", "503"},
    }
    thumbnails = [path for path in paths if "/thumbnails/" in path]
    assert thumbnails
    gated |= {(path, "get"): {"429", "503"} for path in thumbnails}
    for (path, method), codes in gated.items():
        responses = paths[path][method]["responses"]
        assert codes <= set(responses), (path, sorted(responses))
        for code in codes & {"429", "503"}:
            assert "Retry-After" in responses[code]["headers"], (path, code)


def test_docs_page_loads_its_assets_and_the_schema(api):
    """Swagger UI is served locally (no CDN): every asset the page names answers, and its
    start-up script points at the schema, which answers too."""
    page = api.get("/api/docs/")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.content.decode())
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        response = api.get(asset)
        assert response.status_code == 200, asset
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body, asset
        if "?script=" in asset:
            assert b"/api/schema/" in body
    assert api.get("/api/schema/").status_code == 200


def test_health_needs_no_credentials():
    response = APIClient().get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert "classical" in response.json()["engines"]


def test_scheduler_list(api):
    body = api.get("/api/schedulers").json()
    names = [item["name"] for item in body["schedulers"]]
    for name in ("DDIM", "Euler a", "DPM++ 2M Karras", "UniPC", "Heun", "DEIS", "LCM"):
        assert name in names
    karras = next(i for i in body["schedulers"] if i["name"] == "DPM++ 2M Karras")
    assert karras["class"] == "DPMSolverMultistepScheduler" and karras["use_karras_sigmas"]


def test_the_key_scheme_names_every_way_to_send_a_key(api):
    schema = api.get("/api/schema/", headers={"Accept": "application/json"}).json()
    description = schema["components"]["securitySchemes"]["ApiKeyAuth"]["description"]
    for way in ("Api-Key", "Bearer", "X-API-Key"):
        assert way in description, description
