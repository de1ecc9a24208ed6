"""A job's stored pictures as its addresses name them (``api/urls.py``): the input, each
output, the mask as sent (and its 128 px thumbnail), the painted mask, the picture of the
regenerated area; and the thumbnails the pages show of the input, each output, the regenerated
area and the mask (docs/adr/0012-thumbnails-made-with-the-pictures.md).

Thumbnails are at most ``engine.THUMBNAIL_MAX_SIDE`` pixels, as WebP. For a picture larger
than WEB_PIXELS_SMALL (``files.thumbnail_made_with``) the input's is made with its stored
source (in the request that uploads it, from the pixels already decoded) and each output's by
the worker that makes the output, so a page of history decodes nothing large. The
regenerated area's and the mask's are made at their first request, through the web process'
gate, and kept beside the job (``derived_picture``), as are the input's and outputs' of small
pictures and of rows stored before thumbnails existed.

A part named with a side (``0-320``, ``input-320``: ``sized_thumbnail_part``) is the same
thumbnail at ``engine.images.SMALL_THUMBNAIL_SIDE``, for pictures shown smaller than 320 CSS
px on a 1x screen (the history's tiles): made once, at its first request, from the stored 640
px thumbnail (a decode of at most 640 x 640, small work for the gate), and kept beside the job;
a thumbnail already that small is served as it is."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models.fields.files import FieldFile
from PIL import Image

from .. import engine, gate
from ..engine.images import SMALL_THUMBNAIL_SIDE, THUMBNAIL_MAX_SIDE
from ..errors import ClientError
from ..gate import PIXELS
from ..models import GeneratedImage, Generation, Mask
from .derived import derived_picture
from .files import open_stored
from .masks import generation_painted_mask, generation_regenerated, generation_regenerated_encoded


@dataclass(frozen=True)
class Picture:
    file: FieldFile
    #: What a download of it is named after (``Generation.file_name``).
    name: str | int


def _mask_of(generation: Generation) -> Mask:
    if generation.mask is None:
        raise ClientError("This generation has no mask.", status=404)
    return generation.mask


def _regenerates(generation: Generation) -> None:
    if generation.is_upscale:
        raise ClientError("An upscale job regenerates no area: it has no such picture.", status=404)


def _output(generation: Generation, index: str) -> GeneratedImage:
    image = next((i for i in generation.images.all() if str(i.index) == index), None)
    if image is None:
        raise ClientError("No such image.", status=404)
    return image


def _regenerated(generation: Generation) -> Picture:
    _regenerates(generation)
    return Picture(generation_regenerated(generation=generation), "regenerated")


def _painted_mask(generation: Generation) -> Picture:
    _mask_of(generation)
    return Picture(generation_painted_mask(generation=generation), "mask-painted")


#: A job's pictures with a name (its outputs go by their index), each as it is served.
_NAMED: dict[str, Callable[[Generation], Picture]] = {
    "input": lambda generation: Picture(generation.source.file, "input"),
    "mask": lambda generation: Picture(_mask_of(generation).file, "mask"),
    "regenerated": _regenerated,
    "painted-mask": _painted_mask,
    "mask-thumbnail": lambda generation: Picture(_mask_of(generation).thumbnail, "mask-thumbnail"),
}
NAMED_PARTS = tuple(_NAMED)


def _layer_mask(generation: Generation, part: str) -> Mask:
    """The mask of the layer ``part`` names (``layer_part``); a 404 for one the job lacks."""
    position = part.removeprefix("layer-")
    link = None
    if position.isdigit():
        link = generation.layer_links.select_related("mask").filter(position=position).first()
    if link is None:
        raise ClientError("This generation has no such layer.", status=404)
    return link.mask


def layer_part(position: int) -> str:
    """The part that names a layered job's layer's mask (its address: ``layers/<n>.png``)."""
    return f"layer-{position}"


def generation_picture(*, generation: Generation, part: str) -> Picture:
    """``part`` of ``generation``: one of ``NAMED_PARTS``, a layer's mask (``layer_part``) or
    an output's index; a 404 for a part the job does not have."""
    if part in _NAMED:
        return _NAMED[part](generation)
    if part.startswith("layer-"):
        return Picture(_layer_mask(generation, part).file, part)
    image = _output(generation, part)
    return Picture(image.file, image.seed)


def _thumbnail_of(field_file: FieldFile, size: tuple[int, int], owner: int) -> bytes:
    """The thumbnail of a stored picture, decoded through the gate on its owner's share."""
    with PIXELS.doing(gate.THUMBNAIL, size, user=owner):
        return engine.thumbnail_webp(open_stored(field_file))


#: A thumbnail part at a smaller side: "0-320", "input-320".
_SIZED_PART = re.compile(r"(?P<part>input|regenerated|mask|\d+)-(?P<side>\d+)")


def sized_thumbnail_part(part: str, side: int = SMALL_THUMBNAIL_SIDE) -> str:
    """The name of ``part``'s thumbnail at ``side`` (its address: ``thumbnails/<name>.webp``)."""
    return part if side == THUMBNAIL_MAX_SIDE else f"{part}-{side}"


def _smaller(base: FieldFile, side: int, owner: int) -> bytes:
    """The stored thumbnail ``base`` at ``side``: its own bytes when it is no larger."""
    with base.open("rb") as handle:
        data = handle.read()
    image = Image.open(io.BytesIO(data))
    if max(image.size) <= side:
        return data
    with PIXELS.doing(gate.THUMBNAIL, image.size, user=owner):
        image.load()
        return engine.thumbnail_webp(image, max_side=side)


def generation_thumbnail(*, generation: Generation, part: str) -> FieldFile:
    """The stored thumbnail of ``part`` of ``generation`` ("input", "regenerated", "mask"
    or an output's index, each optionally at SMALL_THUMBNAIL_SIDE: ``sized_thumbnail_part``);
    a 404 for a part the job does not have."""
    owner = generation.owner_id
    sized = _SIZED_PART.fullmatch(part)
    if sized and int(sized["side"]) == SMALL_THUMBNAIL_SIDE:
        base = generation_thumbnail(generation=generation, part=sized["part"])
        return derived_picture(
            generation=generation,
            kind=f"thumbnail-{part}",
            extension="webp",
            make=lambda: _smaller(base, SMALL_THUMBNAIL_SIDE, owner),
        )

    def kept(make: Callable[[], bytes]) -> FieldFile:
        return derived_picture(
            generation=generation, kind=f"thumbnail-{part}", extension="webp", make=make
        )

    if part == "input":
        source = generation.source
        if source.thumbnail:
            return source.thumbnail
        return kept(lambda: _thumbnail_of(source.file, (source.width, source.height), owner))
    if part == "regenerated":
        _regenerates(generation)
        encode = engine.thumbnail_webp
        return kept(lambda: generation_regenerated_encoded(generation=generation, encode=encode))
    if part == "mask" or part.startswith("layer-"):
        mask = _mask_of(generation) if part == "mask" else _layer_mask(generation, part)
        return kept(lambda: _thumbnail_of(mask.file, (mask.width, mask.height), owner))
    image = _output(generation, part)
    if image.thumbnail:
        return image.thumbnail
    return kept(lambda: _thumbnail_of(image.file, (image.width, image.height), owner))
