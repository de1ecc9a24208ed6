"""Websocket handshake security: API-key authentication and the origin check."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import AuthenticationFailed, Throttled

from .authentication import key_from_headers, user_for_key


def key_from_query_string(query_string: bytes) -> str | None:
    """``?api_key=`` on the websocket handshake only: a browser's WebSocket cannot set
    headers. HTTP requests never read a key from the query string."""
    values = parse_qs(query_string.decode("latin-1")).get("api_key")
    return values[0].strip() if values and values[0].strip() else None


class ApiKeyAuthMiddleware:
    """When the handshake carries ``Authorization: Api-Key`` (or ``X-API-Key``, or
    ``?api_key=``), the key's owner becomes ``scope["user"]``; a bad key leaves the
    connection anonymous (refused). Daphne's access log records the path without the query."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        key = key_from_headers(headers) or key_from_query_string(scope.get("query_string", b""))
        if key is not None:
            address = (scope.get("client") or ["unknown"])[0]
            try:
                user, api_key = await database_sync_to_async(user_for_key)(key, address=address)
            except (AuthenticationFailed, Throttled):
                user, api_key = AnonymousUser(), None
            # The key stays in the scope: a consumer checks it again before each message.
            scope = dict(scope, user=user, api_key_id=api_key.pk if api_key else None)
        return await self.inner(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _own_origin(scope, headers: dict[str, str]) -> str | None:
    """This server's origin as the handshake reached it: the scheme of the connection (or of
    the TLS proxy in front, with DJANGO_HTTPS), and the Host header, which must be allowed."""
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    secure = scope.get("scheme") == "wss" or (
        settings.HTTPS and headers.get("x-forwarded-proto", "").lower() == "https"
    )
    return f"{'https' if secure else 'http'}://{host}"


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return allowed


def origin_allowed(scope) -> bool:
    """Browsers always send Origin: it must be this server's own origin, compared like
    Django's CSRF check (scheme, host and port), or one of CSRF_TRUSTED_ORIGINS. Clients that
    send none (scripts with an API key) cannot be driven by another site, so they pass."""
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
    }
    origin = headers.get("origin")
    if origin is None:
        return True
    given = _origin_tuple(origin)
    if given is None:
        return False
    own = _own_origin(scope, headers)
    trusted = [*settings.CSRF_TRUSTED_ORIGINS, *([own] if own else [])]
    return any(given == _origin_tuple(candidate) for candidate in trusted)


class SameOriginValidator:
    """ASGI middleware: refuse a websocket handshake from another origin (403)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def origin_checked(application):
    return SameOriginValidator(application)
