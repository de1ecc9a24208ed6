"""A key in the path (ADR 8): ``/k/<key>/sdapi/v1/img2img`` for the AUTOMATIC1111 clients that
cannot send credentials (openOutpaint's page, some GIMP and Krita plugins). The user types
``https://host/k/<key>/`` as the server's address; the client appends A1111's paths.

One place: this middleware takes the key out of the path and hands it on as the request's only
credential (``Authorization: Api-Key <key>``), so the API's key check decides (constant time,
the bad-key throttle, expiry, revocation). A request through the prefix carries nothing
ambient: its cookies, HTTP Basic and key headers are dropped. Only the A1111 routes are
reachable that way; any other path under the prefix is a 404 before any key is read. The
answers are never cached and send no referrer; the logs redact the key (``keyformat``).
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse
from django.utils.decorators import sync_and_async_middleware

from .keyformat import KEY_IN_PATH

#: The routes a key in the path reaches: AUTOMATIC1111's API and its extensions'.
KEY_PATH_ROUTES = ("/sdapi/", "/controlnet/", "/queue/")
#: What a browser or a client adds by itself: never read on a request through the prefix.
AMBIENT_CREDENTIALS = ("HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_X_API_KEY")


def key_base_path(key: str) -> str:
    """The base path that carries ``key``: what the user types, after the host, into a client."""
    return f"/k/{key}/"


def _through_prefix(request):
    """None for a request without the prefix; else the answer to give at once (a 404), or the
    request made ready for the A1111 routes with the key as its only credential."""
    match = KEY_IN_PATH.match(request.path_info)
    if match is None:
        return None
    rest = match["rest"] or "/"
    if not rest.startswith(KEY_PATH_ROUTES):
        return JsonResponse(
            {
                "detail": "Not Found: a key in the path (/k/<key>/) reaches the AUTOMATIC1111 "
                "API only (/k/<key>/sdapi/..., /controlnet/..., /queue/...); other APIs take "
                "the key in a header."
            },
            status=404,
        )
    for name in AMBIENT_CREDENTIALS:
        request.META.pop(name, None)
    request.META["HTTP_AUTHORIZATION"] = f"Api-Key {match['key']}"
    request.COOKIES = {}
    request.__dict__.pop("headers", None)  # built from META on first use
    script_name = request.path[: len(request.path) - len(request.path_info)]
    request.path_info = request.META["PATH_INFO"] = rest
    request.path = script_name + rest
    return request


def _private(response):
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@sync_and_async_middleware
def key_in_path_middleware(get_response):
    """Sync and async alike (the rewrite does no I/O), so daphne's requests take no extra hop
    between threads."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            ready = _through_prefix(request)
            if ready is None:
                return await get_response(request)
            if ready is not request:
                return _private(ready)
            return _private(await get_response(request))

    else:

        def middleware(request):
            ready = _through_prefix(request)
            if ready is None:
                return get_response(request)
            if ready is not request:
                return _private(ready)
            return _private(get_response(request))

    return middleware
