"""The error answers of every operation, documented in one place (a drf-spectacular
postprocessing hook), so that the published schema names every status code a client can get.

Which codes an operation can answer follows from what it is, the same way for every view:

- 400: it takes parameters or a body (validation);
- 401, 403: it needs credentials (missing or unusable; not allowed, or a CSRF failure);
- 404: it names a resource in its path or its query (``QUERY_NAMES``; another user's is
  404 too, never 403), or it is a paginated list (a page past the end);
- 408, 413, 415: it takes a body (one that arrives too slowly, or one over
  ``REQUEST_MAX_BYTES``; a content type it does not parse);
- 503 with ``Retry-After``: it takes a body (the bodies the process receives at once are at
  their bound) or makes a picture where it is answered (the web process' gate is full,
  docs/adr/0011-the-web-budget.md);
- 409, 422: a POST that submits or acts on a generation (cancelled or already finished;
  failed, or an idempotency key reused for another request);
- 429 with ``Retry-After``: every throttled operation (per-user rates, the active-generation
  quota, bad keys, the user's share of the web process' gate), and a GET that makes a picture
  (the gate).

Every error body has the one shape ``{"status": "error", "message", "errors"}``, but for the
compatible APIs whose clients read their own (``error_shape`` of their views): AUTOMATIC1111's
``{"error", "detail", "body", "errors"}`` and OpenAI's ``{"error": {"message", "type", "param",
"code"}}``.
"""

from __future__ import annotations

from ..answers import a1111, openai

ERROR_COMPONENT = "ErrorResponse"
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "message": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["status", "message"],
}
#: A view's ``error_shape`` -> the schema component of that shape.
COMPAT_ERRORS = {
    a1111.error_body: (
        "A1111ErrorResponse",
        {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "detail": {"type": "string"},
                "body": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["error", "detail"],
        },
    ),
    openai.error_body: (
        "OpenAIErrorResponse",
        {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": "string", "nullable": True},
                        "code": {"type": "string", "nullable": True},
                    },
                    "required": ["message", "type", "param", "code"],
                }
            },
            "required": ["error"],
        },
    ),
}
DESCRIPTIONS = {
    "400": "Invalid input: the message says what, errors says which field.",
    "401": "No credentials, or an API key that is wrong, revoked or expired.",
    "403": "Not allowed (a session request without its CSRF token, a disabled account, or a "
    "new job while your pictures take your storage quota: the message says how much).",
    "404": "No such resource (another user's generation is not found either).",
    "409": "The generation is in a state that does not allow this (cancelled, finished).",
    "408": "The request body arrived too slowly (REQUEST_BODY_MIN_BYTES_PER_WINDOW every "
    "REQUEST_BODY_WINDOW_SECONDS, all of it within REQUEST_BODY_MAX_SECONDS) and was cut off.",
    "413": "The request body is larger than the server accepts.",
    "415": "The body's content type is not one this operation parses.",
    "422": "The generation failed, or the idempotency key was used for another request.",
    "429": "Too many requests, too many active generations (a cancelled one counts until its "
    "worker has stopped it), too many wrong keys, or your share of the pictures the web "
    "process makes at once is taken (Retry-After says when to come back).",
    "503": "The server is busy: the bodies or the pictures it works on at once are at their "
    "bound (Retry-After says when to come back), or no worker runs the model asked for.",
    "504": "The job is still running at the wait limit (IMG2IMG_WAIT_SECONDS); it goes on.",
}
#: GETs whose answer is a picture made where the request is answered (the gate's 429 / 503).
MAKES_A_PICTURE = (
    "/regenerated.png",
    "/painted-mask.png",
    "/thumbnails/",
    "/v1/images/files/",
    "/api/links/",
)
#: The answers that tell a client when to come back.
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer"},
    }
}
#: Query parameters that name a resource (Fooocus-API's ``query-job?job_id=``).
QUERY_NAMES = ("job_id",)
#: POSTs that only compute something and never touch a generation.
NOT_ABOUT_A_GENERATION = ("/api/masks/", "/v1/tools/", "/sdapi/v1/png-info")


def _codes(path: str, method: str, operation: dict, blocking: bool) -> list[str]:
    secured = any(requirement for requirement in operation.get("security", [{}]))
    has_body = "requestBody" in operation
    codes = []
    if has_body or operation.get("parameters"):
        codes.append("400")
    if secured:
        codes += ["401", "403"]
    names = [p.get("name") for p in operation.get("parameters", [])]
    if "{" in path or "page" in names or any(name in QUERY_NAMES for name in names):
        codes.append("404")
    if method == "post" and not path.startswith(NOT_ABOUT_A_GENERATION):
        codes += ["409", "422"]
    makes_a_picture = method == "get" and any(part in path for part in MAKES_A_PICTURE)
    if has_body:
        codes += ["408", "413", "415"]
    if secured or makes_a_picture:
        codes.append("429")
    if has_body or makes_a_picture:
        codes.append("503")
    if blocking:  # the compatible APIs whose clients wait for the images (no 202)
        codes.append("504")
    return codes


def document_error_responses(result, generator, request, public):
    """Add the error answers (and the error shapes) to every operation of the schema."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    for component, schema in COMPAT_ERRORS.values():
        schemas[component] = schema
    views = {}  # path -> the view class (the endpoints drf-spectacular found)
    for path, _, _, callback in generator.endpoints or ():
        views[path] = getattr(callback, "cls", None)
    for path, operations in result.get("paths", {}).items():
        view = views.get(path)
        shape = getattr(view, "error_shape", None)
        component = COMPAT_ERRORS[shape][0] if shape in COMPAT_ERRORS else ERROR_COMPONENT
        reference = {"$ref": f"#/components/schemas/{component}"}
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method, operation, getattr(view, "blocking", False)):
                answer = {
                    "description": DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": reference}},
                }
                if code in ("429", "503"):
                    answer["headers"] = RETRY_AFTER
                responses.setdefault(code, answer)
    return result
