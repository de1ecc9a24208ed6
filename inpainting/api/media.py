"""Image responses: the one place that sets the headers every served image carries, served
here or by S3 through a signed URL."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header


def content_disposition(filename: str) -> str:
    """Shown in the browser, saved under ``filename`` (any script: RFC 6266 encodes it)."""
    return content_disposition_header(False, filename)


def signed_url_parameters(filename: str) -> dict[str, str]:
    """What a signed S3 URL asks S3 to answer with: the same headers as ``image_response``
    where S3 can set them (``storage.url(name, parameters=...)``)."""
    return {"ResponseContentDisposition": content_disposition(filename)}


def image_response(content, *, filename: str | None = None, cache: bool = False) -> HttpResponse:
    """PNG bytes or an open file, with nosniff and a CSP that forbids everything active."""
    if hasattr(content, "read"):
        response = FileResponse(content, content_type="image/png")
        # Under ASGI each block is one read and one message to daphne: 1 MB blocks, not 4 KB.
        response.block_size = 1 << 20
    else:
        response = HttpResponse(content, content_type="image/png")
    if filename:
        response["Content-Disposition"] = content_disposition(filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = settings.MEDIA_CONTENT_SECURITY_POLICY
    response["Cache-Control"] = "private, max-age=3600" if cache else "no-store"
    return response
