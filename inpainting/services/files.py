"""Stored inputs: the source image and mask of a job, written once and read by every run."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.base import ContentFile
from PIL import Image

from accounts.models import User

from .. import engine
from ..models import Generation, Mask, SourceImage
from ..params import GenerationParams
from ..uploads import encode_png, thumbnail_png


def thumbnail_made_with(image: Image.Image) -> bool:
    """Whether a picture's thumbnail is made when it is stored: one of more than
    WEB_PIXELS_SMALL pixels (a page of them would need the gate's per-user share); a smaller
    one's is made at its first request, as small work (it kept the job overhead under target)."""
    return image.width * image.height > settings.WEB_PIXELS_SMALL


def source_image_create(*, owner: User, image: Image.Image) -> SourceImage:
    """The working copy every job on this image reads: a PNG compressed at the fast level the
    outputs are (``engine.images.PNG_OPTIONS``). It was uncompressed, for speed (a 512 px
    picture written in 2 ms and read in 1.4 ms, against 20 and 10 ms), but then a 7 KB upload
    of a flat 4096 px picture became a 50 MB file per job (issue 52); compressed, 0.2 MB.
    Its thumbnail (``engine.thumbnail_webp``, for the pages) is made with it, from the pixels
    already decoded: about 35 ms for a 2048 px photo."""
    rgb = engine.to_rgb(image)
    thumbnail = engine.thumbnail_webp(rgb) if thumbnail_made_with(rgb) else b""
    return _stored(SourceImage(owner=owner), rgb, ("source.png", "thumbnail.webp"), thumbnail)


def mask_create(*, owner: User, mask: Image.Image) -> Mask:
    """Store the mask as uploaded (alpha kept: it carries meaning) plus a 128 px thumbnail."""
    row = Mask(owner=owner, transparent=engine.has_transparent_pixels(mask))
    return _stored(row, mask, ("mask.png", "thumb.png"), thumbnail_png(mask))


def _stored(row, image: Image.Image, names: tuple[str, str], thumbnail: bytes):
    """``row`` (a SourceImage or a Mask) saved with ``image`` as its PNG file and its
    ``thumbnail`` (none: made at its first request), their bytes counted in its owner's usage."""
    encoded = encode_png(image)
    row.width, row.height, row.sha256 = encoded.width, encoded.height, encoded.sha256
    row.stored_bytes = len(encoded.data) + len(thumbnail)
    row.file.save(names[0], ContentFile(encoded.data), save=False)
    if thumbnail:
        row.thumbnail.save(names[1], ContentFile(thumbnail), save=False)
    row.save()
    return row


def open_stored(field_file) -> Image.Image:
    with field_file.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def stored_mask(generation: Generation) -> Image.Image | None:
    return open_stored(generation.mask.file) if generation.mask_id else None


def stored_references(generation: Generation) -> list[SourceImage]:
    """A job's reference pictures, in the request's order."""
    links = generation.reference_links.select_related("image").order_by("position")
    return [link.image for link in links]


def stored_layers(generation: Generation) -> list[Mask]:
    """A layered job's layers' masks, in its layers' order (bottom up)."""
    links = generation.layer_links.select_related("mask").order_by("position")
    return [link.mask for link in links]


def generation_request(
    generation: Generation, *, with_references: bool = True
) -> engine.InpaintRequest:
    """The engine request of a stored job: its input, mask, parameters and (unless
    ``with_references`` is false: the picture of its regenerated area needs none) reference
    pictures. A run and that picture read the job the same way."""
    params = GenerationParams.from_json(generation.params)
    references = stored_references(generation) if with_references else []
    return params.to_request(
        image=open_stored(generation.source.file),
        mask=stored_mask(generation),
        reference_images=tuple(open_stored(row.file) for row in references),
        layer_masks=tuple(open_stored(row.file) for row in stored_layers(generation)),
    )
