"""The one JSON error shape: {"status": "error", "message": "...", "errors": {field: [...]}}.

A compatible API whose clients read another shape (AUTOMATIC1111's, OpenAI's) names it as its
view's ``error_shape``: the message, the field errors and the status are found here, once,
and only written out in that shape."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.authentication import NO_KEY_MESSAGE
from accounts.pathkey import KEY_PATH_ROUTES as A1111_ROUTES  # A1111's API and its extensions'

from ..answers import a1111, openai
from ..errors import ClientError


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"status": "error", "message": message, "errors": errors or {}}


def _flatten(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value)]
    return [str(detail)]


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(field): _flatten(value) for field, value in detail.items()}
    return {"non_field_errors": _flatten(detail)}


def _missing_credentials_message(context: dict) -> str:
    """How to send a key, as the view's key authentication says (ModelsLab's also reads the
    body's ``key``); DRF's own "credentials were not provided" does not say how."""
    request = context.get("request")
    for authenticator in getattr(request, "authenticators", None) or ():
        message = getattr(authenticator, "missing_key_message", None)
        if message:
            return message
    return NO_KEY_MESSAGE


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = _native_error(exc, context)
    shape = getattr(context.get("view"), "error_shape", None)
    if response is not None and shape is not None:
        body = response.data
        response.data = shape(response.status_code, body["message"], body["errors"])
    return response


def _native_error(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ClientError):
        user = getattr(context.get("request"), "user", None)
        message = exc.for_reader(staff=bool(getattr(user, "is_staff", False)))
        errors = {exc.field: [message]} if exc.field else {}
        response = Response(error_body(message, errors), status=exc.status)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a 500: always a bug
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        first_field, messages = next(iter(errors.items()), ("", ["Invalid input."]))
        label = "" if first_field == "non_field_errors" else f"{first_field}: "
        response.data = error_body(f"{label}{messages[0]}", errors)
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = error_body(_missing_credentials_message(context), {})
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = error_body(str(detail or exc), {})
    return response


#: Paths whose clients read another API's error shape, for a path no view serves (a view says
#: its own, ``error_shape``): OpenAI's under its image and model routes, A1111's (FastAPI's
#: ``detail``) under its routes and its extensions'.
NOT_FOUND_SHAPES = (
    (("/v1/images/", "/v1/models"), openai.error_body),
    (A1111_ROUTES, a1111.error_body),
)
#: Headers that carry an API key (``accounts.authentication``): a request with one is a
#: client's, answered in JSON wherever it goes.
CREDENTIAL_HEADERS = ("Authorization", "X-API-Key")


def not_found_body(method: str, path: str) -> dict[str, Any]:
    """A 404's body for a path no view serves, in the shape its API's clients read."""
    message = f"Not found: no route {method} {path} here."
    for prefixes, shape in NOT_FOUND_SHAPES:
        if path.startswith(prefixes):
            return shape(404, message, {})
    return error_body(message)


def wants_json(request) -> bool:
    """Whether a request is an API client's, not a browser's page view: it sends credentials
    in a header, or accepts JSON and not HTML."""
    accept = request.headers.get("Accept", "")
    asks_json = "json" in accept and "text/html" not in accept
    return asks_json or any(request.headers.get(name) for name in CREDENTIAL_HEADERS)


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(not_found_body(request.method, request.path), status=404)


def json_server_error(request) -> JsonResponse:
    """A crash under an API prefix: the error shape, and nothing of the crash (it is logged)."""
    return JsonResponse(
        error_body("The server failed on this request; it is logged. Try again later."),
        status=500,
    )
