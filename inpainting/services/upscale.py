"""Upscaling a picture without weights (Lanczos, nearest): AUTOMATIC1111's extras endpoints.
The output size is checked against UPSCALE_MAX_PIXELS from the picture's header, before any
pixel is decoded; the work is one resample, done where the request is answered."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .. import engine
from ..engine import upscale
from ..errors import ClientError
from ..uploads import IMAGE_FORMATS, decode_image, image_size


@dataclass(frozen=True)
class UpscaleAsk:
    """What a request asks: a ``factor``, or a ``width`` and ``height`` (``crop``: cover that
    size and cut the middle out, as AUTOMATIC1111's "scale to" with crop), by ``method``."""

    factor: float | None = None
    width: int | None = None
    height: int | None = None
    crop: bool = True
    method: str = "lanczos"


def _plan(size: tuple[int, int], ask: UpscaleAsk, field: str) -> tuple[tuple[int, int], bool]:
    """The size to resample to, and whether the middle is then cut to the asked size."""
    if ask.width and ask.height and ask.crop:
        factor = max(ask.width / size[0], ask.height / size[1])
        return upscale.target_size(size, factor=factor, field=field), True
    if ask.width and ask.height:
        # A1111 without crop: the factor that covers the size, the aspect ratio kept.
        factor = max(ask.width / size[0], ask.height / size[1])
        return upscale.target_size(size, factor=factor, field=field), False
    if ask.width or ask.height:
        return upscale.target_size(size, width=ask.width, height=ask.height, field=field), False
    return upscale.target_size(size, factor=ask.factor, field=field), False


def upscale_pngs(pictures: list[bytes], ask: UpscaleAsk, *, field: str) -> list[bytes]:
    """Each picture upscaled as ``ask`` says, as PNG. Every size is read from its header and
    checked first (the upload limits, then UPSCALE_MAX_PIXELS for all the outputs together),
    before any picture is decoded; then one picture at a time."""
    try:
        sizes = [image_size(data, field=field, formats=IMAGE_FORMATS) for data in pictures]
        plans = [_plan(size, ask, field) for size in sizes]
        upscale.check_targets(
            [target for target, _ in plans], settings.UPSCALE_MAX_PIXELS, field=field
        )
        outputs = []
        for data, (target, crop) in zip(pictures, plans, strict=True):
            image = engine.to_rgb(decode_image(data, field=field, formats=IMAGE_FORMATS))
            out = upscale.upscale(image, target, method=ask.method)
            if crop:
                left, top = (out.width - ask.width) // 2, (out.height - ask.height) // 2
                out = out.crop((left, top, left + ask.width, top + ask.height))
            outputs.append(engine.encode_png(out))
    except engine.InvalidInput as exc:
        raise ClientError(str(exc), field=exc.field or field) from None
    return outputs
