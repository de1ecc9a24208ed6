"""Image bytes as the compatible APIs hand them over: a whole-image mask for plain img2img,
an image that is its own mask, the text chunks of an image (its generation parameters), live
previews as those APIs show them, and stored outputs in another format. Every input here
passed the upload limits first (its size read from its header)."""

from __future__ import annotations

import base64
import io

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User

from .. import engine, gate
from ..engine.masks import has_alpha
from ..gate import PIXELS
from ..models import DerivedPicture, GeneratedImage
from ..uploads import IMAGE_FORMATS, decode_image, image_header, image_size, read_upload
from .derived import derived_picture
from .generations import quota_check


def whole_image_mask(image: SimpleUploadedFile, *, field: str) -> SimpleUploadedFile:
    """Plain img2img: a white mask of the image's size (every pixel regenerated)."""
    size = image_size(image.read(), field=field, formats=IMAGE_FORMATS)
    image.seek(0)
    return SimpleUploadedFile("mask.png", engine.encode_png(Image.new("L", size, 255)))


#: The colour of a text-to-image job's empty canvas (mid-grey: what it starts from does not
#: matter, the whole canvas is denoised from noise).
BLANK = (128, 128, 128)


def blank_canvas(width: int, height: int, *, user: User) -> tuple[SimpleUploadedFile, ...]:
    """Text to image as an inpaint (AUTOMATIC1111's ``txt2img``, OpenAI's generations): an
    empty canvas of the size asked for (checked by the caller) and a mask that covers it all.
    The user's quota first, then made through the web process' gate, on ``user``'s share."""
    quota_check(user, lock=False)  # before any pixel is made, as every job's path
    with PIXELS.doing(gate.BLANK_CANVAS, (width, height), user=user.pk):
        canvas = engine.encode_png(Image.new("RGB", (width, height), BLANK))
        mask = engine.encode_png(Image.new("L", (width, height), 255))
    return SimpleUploadedFile("canvas.png", canvas), SimpleUploadedFile("mask.png", mask)


def image_as_its_own_mask(
    upload, *, user: User
) -> tuple[SimpleUploadedFile, SimpleUploadedFile | None]:
    """OpenAI's rule when no mask is sent: an image with transparent pixels is its own mask
    (those pixels are edited); an opaque one (no alpha channel, or one that is opaque
    everywhere) has none, and the whole picture is edited by the prompt (an edit model's job:
    ``generations.generation_create`` says so otherwise). The user's quota is checked first;
    the alpha channel is then read through the web process' gate, on ``user``'s share (the
    job decodes the picture once more: the one upload read twice in its request)."""
    quota_check(user, lock=False)  # before any picture is decoded, as every job's path
    data = read_upload(upload, field="image")
    header, _ = image_header(data, field="image", formats=IMAGE_FORMATS)  # within the limits
    transparent = False
    if header.format == "PNG" and has_alpha(header):
        size = image_size(data, field="image", formats=IMAGE_FORMATS)
        with PIXELS.doing(gate.ALPHA_READ, size, user=user.pk):
            decoded = decode_image(data, field="image", formats=IMAGE_FORMATS)
            transparent = decoded.convert("RGBA").getchannel("A").getextrema()[0] < 255
    image = SimpleUploadedFile("image.png", data)
    return image, (SimpleUploadedFile("mask.png", data) if transparent else None)


def image_upright_png(upload, *, user: User) -> bytes:
    """An uploaded picture (any upload format: a phone's HEIC too) as an upright PNG, under the
    upload limits: the studio shows one that the browser cannot decode, and sends it on. Made
    through the web process' gate, on ``user``'s share."""
    data = read_upload(upload, field="image")
    size = image_size(data, field="image", formats=IMAGE_FORMATS)
    # The decoded picture, its RGB copy and the PNG encoder's buffer.
    with PIXELS.doing(gate.UPRIGHT, size, user=user.pk):
        image = decode_image(data, field="image", formats=IMAGE_FORMATS)
        return engine.encode_png(engine.to_rgb(image))


def image_fitted_inside(
    upload, width: int, height: int, *, field: str, user: User
) -> SimpleUploadedFile:
    """An uploaded picture scaled to fit inside ``width`` x ``height`` (deep-image.ai's uncrop
    then fills the rest), as the PNG upload of a job; as sent when it fits already. Made
    through the web process' gate, on ``user``'s share."""
    data = read_upload(upload, field=field)
    original = image_size(data, field=field, formats=IMAGE_FORMATS)
    scale = min(width / original[0], height / original[1])
    size = (
        min(width, max(1, round(original[0] * scale))),
        min(height, max(1, round(original[1] * scale))),
    )
    if size == original:
        return SimpleUploadedFile(field, data)
    with PIXELS.doing(gate.FITTED, original, size, user=user.pk):
        image = engine.to_rgb(decode_image(data, field=field, formats=IMAGE_FORMATS))
        fitted = image.resize(size, Image.Resampling.LANCZOS)
        return SimpleUploadedFile(field, engine.encode_png(fitted))


def png_texts(data: bytes, *, field: str = "image") -> dict[str, str]:
    """The text chunks of an image (an A1111 or DreamLayer PNG's ``parameters``), read from
    its header: no pixel is decoded."""
    header, _ = image_header(data, field=field, formats=IMAGE_FORMATS)  # within the limits
    return {k: v for k, v in header.info.items() if isinstance(k, str) and isinstance(v, str)}


def preview_png(jpeg: bytes | None) -> bytes | None:
    """A live preview (a small JPEG at latent resolution) as a PNG (A1111's progress)."""
    if jpeg is None:
        return None
    with Image.open(io.BytesIO(jpeg)) as preview:
        return engine.encode_png(preview.convert("RGB"))


def preview_as(
    jpeg: bytes, size: tuple[int, int], output_format: str, quality: int, *, user: User
) -> str:
    """A live preview at the output's size, in its format, as base64 (OpenAI's partial
    images), made through the web process' gate on ``user``'s share."""
    with PIXELS.doing(gate.PARTIAL_IMAGE, size, user=user.pk):
        with Image.open(io.BytesIO(jpeg)) as preview:
            scaled = preview.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        return base64.b64encode(engine.encode_as(scaled, output_format, quality)).decode()


def image_file_as(image: GeneratedImage, output_format: str, quality: int) -> File:
    """A stored output's file in ``output_format``: the PNG as stored (with its parameters),
    or the output in another format, made once at its first request (through the web
    process' gate, on the job owner's share: a signed link has no user of its own) and kept
    beside the job. One variant a format is kept: another quality of a format already kept is
    made for its request and not stored (20 replays with new compressions stored 36.6 MB past
    a full quota)."""
    if output_format == "png":
        return image.file
    kind = f"output-{image.index}-{output_format}-q{quality}"

    def make() -> bytes:
        size = (image.width, image.height)
        owner = image.generation.owner_id
        with PIXELS.doing(gate.CONVERTED, size, user=owner):
            with image.file.open("rb") as handle, Image.open(handle) as decoded:
                return engine.encode_as(decoded, output_format, quality)

    variants = DerivedPicture.objects.filter(
        generation=image.generation, kind__startswith=f"output-{image.index}-{output_format}-q"
    )
    if variants.exclude(kind=kind).exists():
        return ContentFile(make(), name=f"{kind}.{output_format}")
    return derived_picture(
        generation=image.generation, kind=kind, extension=output_format, make=make
    )


def image_bytes_as(image: GeneratedImage, output_format: str, quality: int) -> bytes:
    """A stored output's bytes in ``output_format`` (``image_file_as``)."""
    with image_file_as(image, output_format, quality).open("rb") as handle:
        return handle.read()
