"""Image links that work without a key, for an hour (OpenAI's ``response_format=url``, and the
output links of ModelsLab, FooocusAPI and deep-image.ai answers): the link itself, signed with
the server's secret (``answers.native.image_link_token``), is the permission. It names one
image of one generation and the format to send it in; a deleted job's links stop working, and
so do those of a job whose key has been revoked. The access log never writes a link whole
(``dreamlayer_site.serve``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.files import File

from accounts.authentication import api_key_still_usable

from ..answers.native import IMAGE_LINK_SALT
from ..engine.images import OUTPUT_FORMATS
from ..errors import ClientError
from ..models import GeneratedImage
from .images import image_file_as

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class LinkedImage:
    file: File
    content_type: str
    seconds_left: int  # until the link expires


def image_link_read(token: str) -> LinkedImage:
    """The image a link names, in its format, with its content type and how long the link
    still works; a link that is forged, expired (``IMAGE_LINK_SECONDS``) or names a deleted
    image (or a disabled account's) is a 404."""
    try:
        payload = signing.loads(token, salt=IMAGE_LINK_SALT, max_age=settings.IMAGE_LINK_SECONDS)
    except signing.BadSignature:  # SignatureExpired is one
        raise ClientError("This image link is not valid, or has expired.", status=404) from None
    image = (
        GeneratedImage.objects.select_related("generation__owner")
        .filter(pk=payload["image"])
        .first()
    )
    # A deleted job's links, a disabled account's, and those of a job made with a key that
    # has been revoked (or has expired) since, stop working.
    if image is None or not image.generation.owner.is_active:
        raise ClientError("This image no longer exists.", status=404)
    key = image.generation.api_key_id
    if key is not None and not api_key_still_usable(api_key_id=key):
        raise ClientError("The API key this image link was made with is revoked.", status=404)
    if payload["format"] not in OUTPUT_FORMATS:
        raise ClientError("This image link is not valid, or has expired.", status=404)
    output_format = payload["format"]
    signed_at = signing.b62_decode(token.rsplit(":", 2)[-2])  # the signer's timestamp
    left = int(signed_at + settings.IMAGE_LINK_SECONDS - time.time())
    return LinkedImage(
        image_file_as(image, output_format, payload["quality"]),
        CONTENT_TYPES[output_format],
        max(0, left),
    )
