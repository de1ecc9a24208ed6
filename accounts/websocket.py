"""Websocket handshake security: API-key authentication and the origin check."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed

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
            from django.contrib.auth.models import AnonymousUser

            try:
                user, _ = await database_sync_to_async(user_for_key)(key)
            except AuthenticationFailed:
                user = AnonymousUser()
            scope = dict(scope, user=user)
        return await self.inner(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin: it must be one of ALLOWED_HOSTS. Clients that send none
    (scripts with an API key) cannot be tricked by another site, so they pass."""

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def origin_checked(application):
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed)
