"""Phone photos (issue 40): a HEIC file, written here with pillow-heif as an iPhone writes one
(turned a quarter by its orientation), is read upright under the same limits as any upload,
and stored as PNG, through the native API, a compatible API that takes files, and the studio's
conversion for the browser (which cannot decode HEIC); AVIF is Pillow's own."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

import inpainting.uploads  # noqa: F401 - registers pillow-heif's HEIF plugin, as the app does
from inpainting.models import Generation
from tests.images import box_mask, gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

#: As the camera saw it: 96 x 64, a red left third, turned a quarter clockwise to be upright
#: (EXIF orientation 6, which HEIF keeps as its rotation).
SENSOR = np.asarray(gradient(96, 64)).copy()
SENSOR[:, :32] = (220, 30, 30)
UPRIGHT = np.asarray(Image.fromarray(SENSOR).transpose(Image.Transpose.ROTATE_270))


def heic_bytes(pixels: np.ndarray = SENSOR, orientation: int = 6, fmt: str = "HEIF") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def close_to(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).mean() < 6


def test_a_heic_photo_is_read_upright_and_stored_as_png_by_the_native_api(api):
    # Upright the photo is 64 wide and 96 high: the mask is drawn on that.
    mask = png_bytes(box_mask(64, 96, (10, 40, 40, 70), inpaint_white=False))
    response = api.post(
        "/api/img2img",
        {
            "image": SimpleUploadedFile("IMG_0001.HEIC", heic_bytes(), "image/heic"),
            "mask": SimpleUploadedFile("mask.png", mask, "image/png"),
        },
        format="multipart",
    )
    assert response.status_code == 200, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    assert (generation.source.width, generation.source.height) == (64, 96)
    with generation.source.file.open("rb") as handle:
        stored = Image.open(io.BytesIO(handle.read()))
        assert stored.format == "PNG"
        assert close_to(np.asarray(stored.convert("RGB")), UPRIGHT)


def test_the_studio_gets_an_upright_png_of_a_heic_photo(api):
    response = api.post(
        "/api/images/png",
        {"image": SimpleUploadedFile("IMG_0001.HEIC", heic_bytes(), "image/heic")},
        format="multipart",
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    shown = Image.open(io.BytesIO(response.content))
    assert close_to(np.asarray(shown.convert("RGB")), UPRIGHT)


def test_avif_is_read_too(api):
    response = api.post(
        "/api/images/png",
        {"image": SimpleUploadedFile("a.avif", heic_bytes(orientation=1, fmt="AVIF"))},
        format="multipart",
    )
    assert response.status_code == 200
    shown = Image.open(io.BytesIO(response.content))
    assert close_to(np.asarray(shown.convert("RGB")), SENSOR)


def test_a_heic_over_the_size_limits_is_refused_before_its_pixels_are_decoded(api, settings):
    settings.UPLOAD_MAX_SIDE = 80
    response = api.post(
        "/api/images/png",
        {"image": SimpleUploadedFile("big.heic", heic_bytes(), "image/heic")},
        format="multipart",
    )
    assert response.status_code == 400
    assert "the limit is 80 pixels on a side" in response.json()["errors"]["image"][0]


def test_a_file_that_only_says_heic_is_refused_clearly(api):
    response = api.post(
        "/api/images/png",
        {"image": SimpleUploadedFile("fake.heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)},
        format="multipart",
    )
    assert response.status_code == 400
    assert "image" in response.json()["errors"]


def test_the_sd_inpainting_api_takes_a_heic_photo(keyed_api):
    mask = png_bytes(box_mask(64, 96, (10, 40, 40, 70), inpaint_white=True))
    response = keyed_api.post(
        "/sd-inpaint/inpaint",
        {
            "image": SimpleUploadedFile("IMG_0002.heic", heic_bytes(), "image/heic"),
            "mask": SimpleUploadedFile("mask.png", mask, "image/png"),
            "prompt": "a red ball",
        },
        format="multipart",
    )
    assert response.status_code == 200, response.content
    out = Image.open(io.BytesIO(response.content))
    assert out.size == (64, 96)
