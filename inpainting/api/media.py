"""Image responses: the one place that sets the headers every served image carries. Stored
images are streamed through the web process from the storage that holds them, S3 included
(docs/adr/0006)."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

#: How long a client may keep a stored picture it fetched with its credentials.
STORED_PICTURE_MAX_AGE = 3600


def content_disposition(filename: str) -> str:
    """Shown in the browser, saved under ``filename`` (any script: RFC 6266 encodes it)."""
    return content_disposition_header(False, filename)


def image_response(
    content,
    *,
    filename: str | None = None,
    max_age: int = 0,
    content_type: str = "image/png",
) -> HttpResponse:
    """Image bytes (PNG unless told) or an open file, with nosniff and a CSP that forbids
    everything active; kept in the client's own cache for ``max_age`` seconds (0: not at
    all)."""
    if hasattr(content, "read"):
        response = FileResponse(content, content_type=content_type)
        # Under ASGI each block is one read and one message to daphne: 1 MB blocks, not 4 KB.
        response.block_size = 1 << 20
    else:
        response = HttpResponse(content, content_type=content_type)
    if filename:
        response["Content-Disposition"] = content_disposition(filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = settings.MEDIA_CONTENT_SECURITY_POLICY
    response["Cache-Control"] = f"private, max-age={max_age}" if max_age > 0 else "no-store"
    return response


def selection_response(selected) -> HttpResponse:
    """A mask model's selection (``services.selection.Selection``) as its mask PNG, with what
    the worker did in headers: the model, whether the image's embedding was cached (for this
    user), and where the time went
    (``Server-Timing``: read, wait, select, encode)."""
    response = image_response(selected.png)
    response["X-DreamLayer-Mask-Model"] = selected.model
    response["X-DreamLayer-Embedding"] = selected.embedding
    response["Server-Timing"] = ", ".join(
        f"{name};dur={seconds * 1000:.1f}" for name, seconds in selected.timings.items()
    )
    return response
