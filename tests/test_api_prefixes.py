"""One table of the APIs' URL prefixes (``inpainting/prefixes.py``), read by the settings (the
CORS paths) and the error views (JSON 404s and 500s there): every route of the APIs' URL
modules starts with one of its prefixes, and every prefix has a route, so a new API mounted
elsewhere (whose clients would get HTML errors and no CORS) fails here."""

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver

from dreamlayer_site import serve
from inpainting.prefixes import API_PREFIXES

API_MODULES = ("inpainting.api.urls", "inpainting.api.compat.urls")


def _routes(patterns, prefix: str = "", module: str = ""):
    """Each route as its full path pattern, with the URL module that declares it."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            name = getattr(pattern.urlconf_name, "__name__", module)  # an included module
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern), name)
        else:
            yield prefix + str(pattern.pattern), module


def test_every_api_route_is_under_a_prefix_of_the_table_and_every_prefix_is_used():
    routes = [
        route for route, module in _routes(get_resolver().url_patterns) if module in API_MODULES
    ]
    assert len(routes) > 50
    firsts = {route.split("/", 1)[0] for route in routes}
    assert firsts <= set(API_PREFIXES), sorted(firsts - set(API_PREFIXES))
    assert set(API_PREFIXES) <= firsts, sorted(set(API_PREFIXES) - firsts)


# --- 404s for API clients (issue 83) ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        # OpenAI's paths: OpenAI's error object, which the openai SDK reads
        ("/v1/images/variations", {}, "openai"),
        ("/v1/models/x/y", {}, "openai"),
        # A1111's: its FastAPI ``detail``
        ("/sdapi/v1/txt2imgg", {}, "a1111"),
        # outside the prefixes, a client that asks JSON or sends a key still gets JSON
        ("/no/such/page", {"HTTP_ACCEPT": "application/json"}, "native"),
        ("/no/such/page", {"HTTP_AUTHORIZATION": "Bearer dl_x.y"}, "native"),
        ("/no/such/page", {"HTTP_X_API_KEY": "dl_x.y"}, "native"),
    ],
)
def test_an_api_client_gets_a_json_404_in_its_apis_shape(path, headers, shape):
    answer = Client().post(path, b"{}", content_type="application/json", **headers)
    assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
    body = answer.json()
    message = {
        "openai": lambda: body["error"]["message"],
        "a1111": lambda: body["detail"],
        "native": lambda: body["message"],
    }[shape]()
    assert message == f"Not found: no route POST {path} here."
    if shape == "openai":
        assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.django_db
def test_a_browser_still_gets_the_studios_page_for_a_missing_page():
    answer = Client().get("/no/such/page", HTTP_ACCEPT="text/html,application/json;q=0.9")
    assert answer.status_code == 404 and answer["Content-Type"].startswith("text/html")


def test_an_unserved_path_is_a_404_before_its_body_whatever_the_body_holds():
    """The web server's verdict on a head, taken before a byte of the body is read: a path no
    view serves is a 404 (not a 401 for a body whose key would be inside it), in its API's
    shape; a served one, also through a key in the path, goes on to its credentials."""
    verdict = serve._head_verdict({}, "/api/v6/image_editing/nothing", "10.8.3.1", None)
    assert isinstance(verdict, serve.Refusal) and verdict.status == 404
    headers = {"authorization": "Api-Key dl_x.y"}
    assert serve._head_verdict(headers, "/v1/images/nope", "10.8.3.1", None).status == 404
    assert serve._served("/k/dl_x.y/sdapi/v1/img2img") and serve._served("/sdapi/v1/img2img")
    assert not serve._served("/k/dl_x.y/sdapi/v1/nope")
    assert serve.not_found_body("POST", "/v1/images/nope")["error"]["message"] == (
        "Not found: no route POST /v1/images/nope here."
    )
