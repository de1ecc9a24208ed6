"""One table of the APIs' URL prefixes (``inpainting/prefixes.py``), read by the settings (the
CORS paths) and the error views (JSON 404s and 500s there): every route of the APIs' URL
modules starts with one of its prefixes, and every prefix has a route, so a new API mounted
elsewhere (whose clients would get HTML errors and no CORS) fails here."""

from django.urls import URLResolver, get_resolver

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
