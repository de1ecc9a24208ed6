"""Uploaded files: type from content, size and pixel ceilings, re-encoding (SPEC §7)."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import pillow_heif
from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from .engine import encode_png as png_bytes
from .engine.images import MAX_TEXT_CHUNK, MAX_TEXT_MEMORY
from .errors import UploadError

# Phone photos: HEIC / HEIF (pillow-heif, which turns them upright as it reads them); AVIF is
# Pillow's own. Each is decoded under the same size rules and stored as PNG, as any upload.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "AVIF")
MASK_FORMATS = ("PNG",)


def _names(formats: tuple[str, ...]) -> str:
    """The formats for people: "JPEG, PNG, WEBP, HEIF or AVIF"."""
    if len(formats) < 3:
        return " or ".join(formats)
    return f"{', '.join(formats[:-1])} or {formats[-1]}"


def _limit_mb() -> str:
    return f"{settings.UPLOAD_MAX_BYTES / (1024 * 1024):g} MB"


def check_dimensions(width: int, height: int, *, field: str) -> None:
    """The one size rule for any image the server would hold in memory: at least 1 x 1, at
    most ``UPLOAD_MAX_PIXELS`` in all and ``UPLOAD_MAX_SIDE`` on either side. Called on the
    declared size (an image header, a requested width and height) before any pixel work."""
    if width < 1 or height < 1:
        raise UploadError(
            field=field, message=f"The {field} is {width}x{height} pixels; it has no pixels."
        )
    if width * height > settings.UPLOAD_MAX_PIXELS:
        raise UploadError(
            field=field,
            message=f"The {field} is {width}x{height} pixels; the limit is "
            f"{settings.UPLOAD_MAX_PIXELS} pixels in all.",
        )
    if max(width, height) > settings.UPLOAD_MAX_SIDE:
        raise UploadError(
            field=field,
            message=f"The {field} is {width}x{height} pixels; the limit is "
            f"{settings.UPLOAD_MAX_SIDE} pixels on a side.",
        )


def read_image(upload, *, field: str, formats: tuple[str, ...]) -> Image.Image:
    """Decode an uploaded file after checking its size, its real type and its pixel count."""
    return decode_image(read_upload(upload, field=field), field=field, formats=formats)


def read_upload(upload, *, field: str) -> bytes:
    """An uploaded file's bytes: at most UPLOAD_MAX_BYTES are read, never more."""
    if upload is None:
        raise UploadError(field=field, message=f"The {field} file is required.")
    size = getattr(upload, "size", None)
    if size is not None and size > settings.UPLOAD_MAX_BYTES:
        raise UploadError(field=field, message=f"The {field} file is larger than {_limit_mb()}.")
    data = upload.read(settings.UPLOAD_MAX_BYTES + 1)
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise UploadError(field=field, message=f"The {field} file is larger than {_limit_mb()}.")
    if not data:
        raise UploadError(field=field, message=f"The {field} file is empty.")
    return data


#: EXIF orientations that turn the image a quarter (its width and height swap when applied).
_QUARTER_TURNS = {5, 6, 7, 8}


def _png_exif(image: Image.Image) -> Image.Exif:
    exif = Image.Exif()
    if "exif" in image.info:
        exif.load(image.info["exif"])
    return exif


def _refuse_text_over_limit(exc: ValueError, field: str) -> None:
    """Pillow's limits on a PNG's text (``engine.images.MAX_TEXT_CHUNK`` and
    ``MAX_TEXT_MEMORY``), met while reading its chunks, as a client error that says so."""
    if "MAX_TEXT" in str(exc):
        raise UploadError(
            field=field,
            message=f"The {field} carries more text metadata than is read here (at most "
            f"{MAX_TEXT_CHUNK // 1024} KB a chunk, {MAX_TEXT_MEMORY // 1024} KB in all); save "
            "it without its metadata.",
        ) from None


def image_size(data: bytes, *, field: str, formats: tuple[str, ...]) -> tuple[int, int]:
    """The size an image's pixels will have once decoded and turned upright (its EXIF
    orientation), read from its header alone, with the type and pixel limits checked: for a
    request that hands the pixels on to a worker (which decodes them with ``decode_image``)."""
    names = _names(formats)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in formats:
                found = image.format or "an unknown format"
                raise UploadError(
                    field=field, message=f"The {field} must be {names}; this file is {found}."
                )
            width, height = image.size
            check_dimensions(width, height, field=field)
            # A PNG's EXIF may follow its pixels, and Pillow would decode them to read it: only
            # an eXIf chunk before the pixels counts here (the worker's decode turns by any).
            exif = image.getexif() if image.format != "PNG" else _png_exif(image)
            if exif.get(0x0112) in _QUARTER_TURNS:
                width, height = height, width
    except UploadError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, met on opening the header
        raise UploadError(
            field=field,
            message=f"The {field} declares too many pixels; the limit is "
            f"{settings.UPLOAD_MAX_PIXELS} pixels in all.",
        ) from None
    except ValueError as exc:
        _refuse_text_over_limit(exc, field)
        raise UploadError(field=field, message=f"The {field} is not a {names} image.") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise UploadError(field=field, message=f"The {field} is not a {names} image.") from None
    return width, height


def decode_image(data: bytes, *, field: str, formats: tuple[str, ...]) -> Image.Image:
    names = _names(formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in formats:
                found = image.format or "an unknown format"
                raise UploadError(
                    field=field, message=f"The {field} must be {names}; this file is {found}."
                )
            check_dimensions(*image.size, field=field)  # the header's size, before decoding
            image.load()
            # A HEIF's decoded frame may differ from what its header said: checked again.
            check_dimensions(*image.size, field=field)
    except UploadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UploadError(
            field=field,
            message=f"The {field} declares too many pixels; the limit is "
            f"{settings.UPLOAD_MAX_PIXELS} pixels in all.",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, ValueError):
            _refuse_text_over_limit(exc, field)
        if isinstance(exc, UnidentifiedImageError):
            raise UploadError(field=field, message=f"The {field} is not a {names} image.") from None
        raise UploadError(
            field=field, message=f"The {field} could not be decoded ({exc})."
        ) from None
    return ImageOps.exif_transpose(image)


@dataclass
class EncodedImage:
    data: bytes
    width: int
    height: int
    sha256: str


def encode_png(image: Image.Image, *, compress: bool = True) -> EncodedImage:
    """Re-encode as PNG from the pixels alone: metadata and trailing bytes are dropped."""
    data = png_bytes(image, compress=compress)
    return EncodedImage(data, image.width, image.height, hashlib.sha256(data).hexdigest())


def thumbnail_png(image: Image.Image, size: int = 128) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((size, size))
    return png_bytes(thumb)
