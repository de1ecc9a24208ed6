"""POST /api/masks/generate and POST /api/masks/effective."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw

from inpainting.engine import InpaintRequest, MaskOptions, Outpaint, prepare_mask
from tests.helpers import black_box_mask_png
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


def disc_png() -> bytes:
    image = Image.new("RGB", (120, 80), (20, 40, 160))
    ImageDraw.Draw(image).ellipse((40, 20, 80, 60), fill=(250, 140, 20))
    return png_bytes(image)


def generate(api, **fields):
    data = {"image": SimpleUploadedFile("i.png", disc_png(), "image/png"), **fields}
    return api.post("/api/masks/generate", data, format="multipart")


def as_array(response) -> np.ndarray:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_flood_from_a_point_in_dreamlayer_polarity(api):
    mask = as_array(generate(api, method="flood", point="[60, 40]", tolerance=10))
    assert mask.shape == (80, 120)
    assert mask[40, 60] == 0 and mask[5, 5] == 255  # black = inpaint here
    assert 1100 < (mask == 0).sum() < 1400  # the disc: pi * 20^2 = 1257


def test_grabcut_from_a_box_in_white_polarity(api):
    mask = as_array(
        generate(api, method="grabcut", box="[35, 15, 85, 65]", mask_mode="white_inpaints")
    )
    assert mask[40, 60] == 255 and mask[2, 2] == 0
    assert 1000 < (mask == 255).sum() < 1500


def test_errors(api):
    assert generate(api, method="grabcut").status_code == 400
    response = generate(api, method="flood", point="[500, 5]")
    assert response.status_code == 400 and "outside" in response.json()["message"]
    response = generate(api, method="grabcut", box="[1, 2]")
    assert response.status_code == 400 and "x0, y0, x1, y1" in response.json()["message"]


def test_effective_mask_preview(api):
    data = {
        "mask": SimpleUploadedFile("m.png", black_box_mask_png(), "image/png"),
        "width": 96,
        "height": 64,
        "mask_blur": 0,
    }
    mask = as_array(api.post("/api/masks/effective", data, format="multipart"))
    assert mask[30, 40] == 255 and mask[2, 2] == 0  # 255 = regenerated, whatever the polarity
    data = {
        "mask": SimpleUploadedFile("m.png", black_box_mask_png(), "image/png"),
        "width": 64,
        "height": 64,
    }
    response = api.post("/api/masks/effective", data, format="multipart")
    assert response.status_code == 400 and "aspect ratios differ" in response.json()["message"]


def test_effective_mask_of_an_outpaint_is_the_jobs_canvas_mask(api):
    """The studio's overlay covers the outpaint strip: the preview is the runner's own mask."""

    sides = {"left": 0, "right": 40, "top": 16, "bottom": 0}
    data = {
        "mask": SimpleUploadedFile("m.png", black_box_mask_png(), "image/png"),
        "width": 96,
        "height": 64,
        "outpaint": '{"right": 40, "top": 16}',
    }
    mask = as_array(api.post("/api/masks/effective", data, format="multipart"))
    assert mask.shape == (64 + 16, 96 + 40)
    request = InpaintRequest(
        image=Image.new("RGB", (96, 64)),
        mask=Image.open(io.BytesIO(black_box_mask_png())),
        mask_options=MaskOptions(),
        outpaint=Outpaint(**sides),
    )
    assert np.array_equal(mask, prepare_mask(request))
    assert (mask[:16] == 255).all() and (mask[:, 96 + 1 :] == 255).all()  # the new strips
    assert mask[16 + 30, 40] == 255 and mask[16 + 60, 2] == 0  # the box; untouched original

    # Outpaint alone needs no mask; neither is a clear 400.
    data = {"width": 96, "height": 64, "outpaint": '{"left": 8}'}
    mask = as_array(api.post("/api/masks/effective", data, format="multipart"))
    assert mask.shape == (64, 104) and (mask[:, :8] == 255).all() and mask[30, 60] == 0
    response = api.post("/api/masks/effective", {"width": 96, "height": 64}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"]["mask"] == ["Send a mask, an outpaint, or both."]
    data = {"width": 96, "height": 64, "outpaint": '{"left": 9000}'}
    response = api.post("/api/masks/effective", data, format="multipart")
    assert response.status_code == 400 and "outpaint" in response.json()["errors"]
