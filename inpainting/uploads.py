"""Uploaded files: type from content, size and pixel ceilings, re-encoding (SPEC §7)."""

from __future__ import annotations

import hashlib
import io
import re
import struct
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

# The byte scan every upload passes before a decoder opens it (``byte_scan``). Pillow reads a
# PNG's chunks and a JPEG's segments one at a time in Python, on every open, under the GIL
# (about 2.5 us a PNG chunk and 1 us a JPEG segment: a 9.6 MB PNG of 800,000 empty chunks
# cost 1.6 s an open); libjpeg decodes each scan of a progressive JPEG over the whole picture,
# and a repeated scan only makes it warn (a 363 KB JPEG repeating one cost 10.8 s). The limits
# are far past what a camera or an editor writes, and bound the scan's own loop:
#: chunks before a PNG's pixels (IHDR, palette, colour profile, text, EXIF: a few, tens at most).
MAX_PNG_CHUNKS_BEFORE_PIXELS = 1_000
#: chunks in a whole PNG, its pixels' IDAT chunks included (libpng writes 8 KB ones and
#: Pillow 64 KB ones: a 10 MB file has some 1,300 at most).
MAX_PNG_CHUNKS = 10_000
#: scans of a JPEG (a baseline one has 1, or 1 a colour; a progressive one about 10).
MAX_JPEG_SCANS = 100
#: segments (markers) of a JPEG in all: APPn, DQT, DHT, SOF, SOS... (a camera's has a few
#: dozen; a colour profile is split in at most 255).
MAX_JPEG_SEGMENTS = 1_000
#: stray bytes between a JPEG's segments before its first scan (libjpeg warns of them; Pillow
#: skips them one at a time in Python).
MAX_JPEG_STRAY_BYTES = 64 * 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK = struct.Struct(">I4s")  # a chunk's length and type; its data and CRC follow
#: A JPEG marker: 0xFF then any byte but 0x00 (a 0xFF of the entropy-coded data, stuffed),
#: 0xFF (fill) and RST0-7 (restarts inside a scan's data). Found by ``re`` in C: no Python
#: loop runs over a scan's data (10 MB of it are searched in 3 ms).
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
#: ``re`` tries each 0xFF, 10 ns apiece: where they are dense (as no encoder writes them:
#: 0.1 s for 10 MB of them), the bytes are mapped instead so that a marker reads b"\xff\x01",
#: and found by ``bytes.find`` (30 ms for 10 MB of anything).
_JPEG_MARKER_BYTES = bytes(
    0xFF if byte == 0xFF else int(byte != 0 and not 0xD0 <= byte <= 0xD7) for byte in range(256)
)
_JPEG_DENSE_FF = 64  # 0xFF bytes are dense past one in 64 (random data: one in 256)
_JPEG_LENGTH = struct.Struct(">H")
_JPEG_NO_LENGTH = {0x01, 0xD8, 0xD9}  # TEM, SOI, EOI: markers without a segment


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


def byte_scan(data: bytes, *, field: str) -> None:
    """The cheap checks of an image's bytes, before any decoder opens them (``image_header``
    and ``decode_image`` start with it): a PNG's chunk headers and a JPEG's markers are walked
    and counted against the limits above, a 400 that says what is wrong past one. A few
    milliseconds on a 10 MB file; WebP, HEIF and AVIF are left to their decoders' checks."""
    if data.startswith(_PNG_SIGNATURE):
        _png_scan(data, field)
    elif data.startswith(b"\xff\xd8\xff"):
        _jpeg_scan(data, field)


def _png_scan(data: bytes, field: str) -> None:
    """Walk a PNG's chunks (length and type; the data and CRC skipped, not checked) to IEND."""
    position, chunks, pixels = len(_PNG_SIGNATURE), 0, False
    last = len(data) - _PNG_CHUNK.size
    while position <= last:
        length, kind = _PNG_CHUNK.unpack_from(data, position)
        chunks += 1
        pixels = pixels or kind == b"IDAT"
        if not pixels and chunks > MAX_PNG_CHUNKS_BEFORE_PIXELS:
            raise UploadError(
                field=field,
                message=f"The {field} is a PNG with more than {MAX_PNG_CHUNKS_BEFORE_PIXELS} "
                "chunks before its pixels (a camera's or an editor's has a few); save it again "
                "without its extra metadata.",
            )
        if chunks > MAX_PNG_CHUNKS:
            raise UploadError(
                field=field,
                message=f"The {field} is a PNG of more than {MAX_PNG_CHUNKS} chunks (an "
                "editor's has a few, its pixels in chunks of 8 KB or more); save it again.",
            )
        if kind == b"IEND":
            return
        position += length + 12  # length, type, data, CRC


def _jpeg_scan(data: bytes, field: str) -> None:
    """Walk a JPEG's markers as libjpeg reads them: a segment is skipped by its length, and a
    scan's entropy-coded data (or stray bytes) by searching for the next marker; up to the EOI
    that follows a scan."""
    if data.count(b"\xff") > len(data) // _JPEG_DENSE_FF:
        mapped = data.translate(_JPEG_MARKER_BYTES)

        def next_marker(position: int) -> int:
            return mapped.find(b"\xff\x01", position)
    else:

        def next_marker(position: int) -> int:
            found = _JPEG_MARKER.search(data, position)
            return -1 if found is None else found.start()

    position, segments, scans, stray = 2, 0, 0, 0
    while (start := next_marker(position)) >= 0:
        marker = data[start + 1]
        if not scans:
            stray += start - position
        if marker == 0xD9 and scans:  # EOI: libjpeg stops here (Pillow reads on before a scan)
            return
        segments += 1
        scans += marker == 0xDA  # SOS
        if segments > MAX_JPEG_SEGMENTS:
            raise UploadError(
                field=field,
                message=f"The {field} is a JPEG of more than {MAX_JPEG_SEGMENTS} segments (a "
                "camera's has a few dozen); save it again without its extra metadata.",
            )
        if scans > MAX_JPEG_SCANS:
            raise UploadError(
                field=field,
                message=f"The {field} is a JPEG of more than {MAX_JPEG_SCANS} scans (a "
                "progressive JPEG has about 10, and each is a pass over the whole picture); "
                "save it again.",
            )
        if stray > MAX_JPEG_STRAY_BYTES:
            raise UploadError(
                field=field,
                message=f"The {field} is a JPEG with more than {MAX_JPEG_STRAY_BYTES // 1024} "
                "KB of stray bytes between its segments; save it again.",
            )
        position = start + 2
        if marker not in _JPEG_NO_LENGTH and position + 2 <= len(data):
            # A length below 2 skips only itself, as libjpeg does.
            position += max(2, _JPEG_LENGTH.unpack_from(data, position)[0])


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


#: What a file's first bytes say it is, for a refusal's message alone: the file is opened by
#: the plugins of the formats a field takes and no other (``_open``), so that no other
#: plugin parses a client's bytes (an EPS's comment lines, an IPTC or IM header, a GIF's
#: comment blocks cost seconds of CPU per 10 MB before the format was checked).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"),
)


def _sniffed(data: bytes) -> str | None:
    """The format ``data`` starts like, by its first bytes alone (see ``_SIGNATURES``)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return "AVIF" if data[8:12] in (b"avif", b"avis") else "HEIF"
    return next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)


def _open(data: bytes, *, field: str, formats: tuple[str, ...]) -> Image.Image:
    """``data`` opened on its header by the plugins of ``formats`` alone; another format is a
    400 that names it where its first bytes tell it."""
    names = _names(formats)
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        found = _sniffed(data)
        if found is None or found in formats:
            raise UploadError(field=field, message=f"The {field} is not a {names} image.") from None
        raise UploadError(
            field=field, message=f"The {field} must be {names}; this file is {found}."
        ) from None


def image_header(
    data: bytes, *, field: str, formats: tuple[str, ...]
) -> tuple[Image.Image, tuple[int, int]]:
    """An image opened on its header alone, after ``byte_scan``, with its type and pixel limits
    checked, and the size its pixels will have once decoded and turned upright (its EXIF
    orientation). The image is closed again: its format, mode and info are there to read, not
    its pixels."""
    byte_scan(data, field=field)
    names = _names(formats)
    try:
        with _open(data, field=field, formats=formats) as image:
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
    return image, (width, height)


def image_size(data: bytes, *, field: str, formats: tuple[str, ...]) -> tuple[int, int]:
    """The upright size of an image's pixels, from its header alone (``image_header``): for
    a request that hands the pixels on to a worker (which decodes them with ``decode_image``)."""
    return image_header(data, field=field, formats=formats)[1]


def decode_image(data: bytes, *, field: str, formats: tuple[str, ...]) -> Image.Image:
    """Decode an image's pixels (turned upright), after ``byte_scan`` and with its type and
    pixel limits checked on its header first."""
    byte_scan(data, field=field)
    names = _names(formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(data, field=field, formats=formats)
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


def encode_png(image: Image.Image) -> EncodedImage:
    """Re-encode as PNG from the pixels alone: metadata and trailing bytes are dropped."""
    data = png_bytes(image)
    return EncodedImage(data, image.width, image.height, hashlib.sha256(data).hexdigest())


def thumbnail_png(image: Image.Image, size: int = 128) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((size, size))
    return png_bytes(thumb)
