"""API key authentication for DRF and websockets: ``Authorization: Api-Key <key>``,
``Authorization: Bearer <key>`` (how the OpenAI SDK sends its key) or ``X-API-Key: <key>``;
and ``user_from_head``, the web server's check of a request's head before its body is read."""

from __future__ import annotations

import base64
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user
from django.http import parse_cookie
from rest_framework import authentication, exceptions

from . import schema  # noqa: F401 - registers the OpenAPI description of this scheme
from .keyformat import KEY_IN_PATH
from .models import ApiKey, User
from .throttles import KEY_FAILURES, request_address, wait_words

#: The ``Authorization`` schemes that carry a key (compared in lower case).
HEADER_SCHEMES = ("api-key", "bearer")


def no_key_message(elsewhere: str | None = None) -> str:
    """The 401 message when a request brings no credentials at all: how to send a key (the
    API's exception handler answers it). ``elsewhere``: another place the view reads it from."""
    ways = "'Authorization: Api-Key <key>', 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    if elsewhere:
        ways = f"{elsewhere}, or as {ways}"
    return f"No API key: send it as {ways} (create one on the API keys page)."


NO_KEY_MESSAGE = no_key_message()


def key_from_headers(headers: dict[str, str]) -> str | None:
    """The key in ``Authorization: Api-Key <key>``, ``Authorization: Bearer <key>`` or
    ``X-API-Key: <key>`` (lower-case header names). HTTP and websocket handshakes both use it."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in HEADER_SCHEMES and value.strip():
        return value.strip()
    value = headers.get("x-api-key", "").strip()
    return value or None


def _from_another_site(headers: dict[str, str]) -> bool:
    """Whether a browser sent a request (lower-case headers) from a page of another site: its
    ``Sec-Fetch-Site`` says so, or (a browser without Fetch Metadata) its ``Origin`` is not on
    this server's host (``null``, a sandboxed or local page, included). Scripts send neither."""
    if headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != headers.get("host")


def key_from_basic(headers: dict[str, str]) -> str | None:
    """The key HTTP Basic carries as its password (AUTOMATIC1111's ``--api-auth``; any user
    name), from lower-case header names; None without Basic. Raises ``AuthenticationFailed``
    for malformed credentials, or for a browser's request from another site: a browser that
    was once given the key caches it and sends it to this host from any page, so a request
    another site makes (a form that interrupts) is refused, unless the site is one the
    deployment lets call its APIs (CORS_ALLOWED_ORIGINS)."""
    scheme, _, encoded = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    if _from_another_site(headers) and headers.get("origin") not in settings.CORS_ALLOWED_ORIGINS:
        raise exceptions.AuthenticationFailed(
            "HTTP Basic credentials are for scripts; a browser request from another site "
            "is refused."
        )
    try:
        _, separator, key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise exceptions.AuthenticationFailed("Malformed HTTP Basic credentials.") from None
    if not separator or not key:
        raise exceptions.AuthenticationFailed("HTTP Basic needs the API key as the password.")
    return key


def user_from_head(headers: dict[str, str], path: str, *, address: str) -> User | None:
    """The user a request's head (its path and lower-case headers) authenticates, for the web
    server to decide before reading a body (``dreamlayer_site.serve``): the owner of a key in
    the path (``/k/<key>/``: then its only credential, as ``accounts.pathkey`` reads it), in
    the key headers or as HTTP Basic's password, else the user of a logged-in session cookie.
    None when the head brings no credentials; a wrong key raises ``AuthenticationFailed`` or
    ``Throttled`` as ``user_for_key`` does (counted against ``address``)."""
    in_path = KEY_IN_PATH.match(path)
    if in_path is not None:
        return user_for_key(in_path["key"], address=address)[0]
    key = key_from_basic(headers) or key_from_headers(headers)
    if key is not None:
        return user_for_key(key, address=address)[0]
    session_key = parse_cookie(headers.get("cookie", "")).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    # Read only: the session middleware renews or ends the session when the request reaches
    # Django, and sends the new cookie; here a renewed key would be lost with the answer.
    session.cycle_key = session.flush = lambda: None
    user = get_user(SimpleNamespace(session=session))
    return user if user.is_authenticated else None


def user_for_key(key: str, *, address: str) -> tuple[User, ApiKey]:
    """The owner of a usable key; raises ``AuthenticationFailed`` with a clear reason, or
    ``Throttled`` once ``address`` sent too many unusable keys (``THROTTLE_KEY_FAILURES``).

    A usable key is always let through, throttled address or not: many clients share one
    address behind a proxy or an office's NAT, and a flood of wrong keys from one of them must
    not lock the others out. Checking a key costs one indexed look-up and one SHA-512, so the
    throttle only turns the flood's answers into 429s (and says when to try again)."""
    try:
        return _usable_key_owner(key)
    except exceptions.AuthenticationFailed:
        wait = KEY_FAILURES.wait(address)
        if wait:
            raise exceptions.Throttled(
                wait,
                detail="Too many wrong API keys from your address; try again in "
                f"{wait_words(wait)}.",
            ) from None
        KEY_FAILURES.hit(address)
        raise


def _usable_key_owner(key: str) -> tuple[User, ApiKey]:
    try:
        api_key = ApiKey.objects.select_related("user").get(prefix=key.partition(".")[0])
    except ApiKey.DoesNotExist:
        raise exceptions.AuthenticationFailed("Invalid API key.") from None
    if not api_key.is_valid(key):
        raise exceptions.AuthenticationFailed("Invalid API key.")
    _check_usable(api_key)
    api_key.touch()
    return api_key.user, api_key


def api_key_still_usable(*, api_key_id) -> bool:
    """Whether a key that authenticated a long-lived connection (a websocket) may still be
    used: not revoked, not expired, its owner active. Checked again before each message."""
    api_key = ApiKey.objects.select_related("user").filter(pk=api_key_id).first()
    if api_key is None:
        return False
    try:
        _check_usable(api_key)
    except exceptions.AuthenticationFailed:
        return False
    return True


def _check_usable(api_key: ApiKey) -> None:
    if api_key.revoked:
        raise exceptions.AuthenticationFailed("This API key has been revoked.")
    if api_key.has_expired:
        raise exceptions.AuthenticationFailed("This API key has expired.")
    if not api_key.user.is_active:
        raise exceptions.AuthenticationFailed("This account is disabled.")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Sets ``request.user`` to the key's owner and ``request.auth`` to the ``ApiKey`` row."""

    #: What a request without any credentials is told (``inpainting.api.errors``).
    missing_key_message = NO_KEY_MESSAGE

    def authenticate(self, request):
        headers = {k.lower(): v for k, v in request.headers.items()}
        key = key_from_headers(headers)
        if key is None:
            return None
        return user_for_key(key, address=request_address(request))

    def authenticate_header(self, request) -> str:
        return "Api-Key"


class BasicKeyAuthentication(ApiKeyAuthentication):
    """AUTOMATIC1111's ``--api-auth``: HTTP Basic with the API key as the password and any
    user name (``webuiapi.WebUIApi(username=..., password=key)``); the key headers work too."""

    missing_key_message = no_key_message("HTTP Basic with the key as the password")

    def authenticate(self, request):
        key = key_from_basic({k.lower(): v for k, v in request.headers.items()})
        if key is None:
            return super().authenticate(request)
        return user_for_key(key, address=request_address(request))

    def authenticate_header(self, request) -> str:
        return 'Basic realm="DreamLayer"'
