"""OpenAI's image edit API shapes: the images response, the streamed events (server-sent
events: partial images, then one completed event per image) and the error body."""

from __future__ import annotations

import json
from typing import Any

#: The ``type`` of an error by status, as OpenAI names them.
ERROR_TYPES = {429: "rate_limit_error", 401: "invalid_request_error"}
#: The ``code`` of an error by status, where OpenAI gives one.
ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def image_item(*, b64_json: str | None = None, url: str | None = None) -> dict[str, Any]:
    return {"b64_json": b64_json} if b64_json is not None else {"url": url}


def images_response(
    created: int,
    items: list[dict[str, Any]],
    *,
    output_format: str,
    size: tuple[int, int],
    warnings: list[dict[str, str]],
    background: str = "opaque",
) -> dict[str, Any]:
    """``ImagesResponse``; ``usage`` is omitted (no tokens are counted here). ``warnings``
    (DreamLayer's, which the SDK keeps as an extra field): what the engine that ran did not
    follow (a fill engine: the prompt). ``background``: ``transparent`` where the result kept
    the alpha its model painted."""
    return {
        "created": created,
        "data": items,
        "background": background,
        "output_format": output_format,
        "size": f"{size[0]}x{size[1]}",
        "warnings": warnings,
    }


#: ``owned_by`` of every model listed: a model of this server's library (or engine).
OWNER = "dreamlayer"


def model_entry(name: str, created: int) -> dict[str, Any]:
    """One ``Model`` of ``GET /v1/models``: its name as a request's ``model`` gives it."""
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def model_list(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": entries}


def _event(kind: str, body: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **body})}\n\n".encode()


def partial_image_event(
    b64_json: str, index: int, *, created: int, output_format: str, size: tuple[int, int]
) -> bytes:
    return _event(
        "image_edit.partial_image",
        {
            "b64_json": b64_json,
            "partial_image_index": index,
            "created_at": created,
            "output_format": output_format,
            "size": f"{size[0]}x{size[1]}",
            "background": "opaque",
            "quality": "auto",
        },
    )


#: The completed event's ``usage`` (the SDK's type requires one): no token is counted here.
NO_TOKENS = {
    "input_tokens": 0,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
    "output_tokens": 0,
    "total_tokens": 0,
}


def completed_event(
    b64_json: str,
    *,
    created: int,
    output_format: str,
    size: tuple[int, int],
    background: str = "opaque",
) -> bytes:
    return _event(
        "image_edit.completed",
        {
            "b64_json": b64_json,
            "created_at": created,
            "output_format": output_format,
            "size": f"{size[0]}x{size[1]}",
            "background": background,
            "quality": "auto",
            "usage": NO_TOKENS,
        },
    )


def error_event(status: int, message: str) -> bytes:
    """An error in the stream (the SDK raises ``APIError`` with it)."""
    return _event("error", error_body(status, message, {}))


def error_body(status: int, message: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``: ``param`` the first field at
    fault."""
    param = next((field for field in errors if field != "non_field_errors"), None)
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = ERROR_CODES.get(status, "invalid_value" if param else None)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
