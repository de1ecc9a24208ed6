"""Soft inpainting (issue 38) through the worker, on the tiny random SD 1.5 model: a mask of
three bands (0, 128, 255). Soft keeps the 0 band byte-identical, repaints the 255 band as hard
inpainting does, and gives the 128 band a result that is neither the original nor the hard
job's cross-fade there; a mask without gray paints exactly the hard picture; the fill engines
say that they did not use it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import H, W, image_png, output_pixels, post_img2img, run_job, wait_for_status
from tests.images import png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

BANDS = (slice(0, 32), slice(32, 64), slice(64, 96))  # mask 0, 128, 255 (white regenerates)


def bands_mask(gray: int = 128) -> bytes:
    values = np.zeros((H, W), np.uint8)
    values[:, BANDS[1]] = gray
    values[:, BANDS[2]] = 255
    return png_bytes(Image.fromarray(values, "L"))


def paint(api, mask: bytes, **fields):
    fields = {"mask_mode": "white_inpaints", "mask_blur": 0, "num_inference_steps": 8, **fields}
    return run_job(api, mask=mask, seed=3, inpaint_area="whole", **fields)


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_gray_joins_the_denoising_late_black_stays_and_white_is_repainted(api):
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    hard = paint(api, bands_mask())
    soft = paint(api, bands_mask(), soft="true")
    assert soft.params["soft"] is True and soft.metadata["soft_inpainting"] is True
    assert "soft_inpainting" not in hard.metadata
    hard_pixels, soft_pixels = output_pixels(hard), output_pixels(soft)
    black, gray, white = BANDS
    # 0: byte-identical, as always.
    assert np.array_equal(soft_pixels[:, black], original[:, black])
    # 255: repainted as hard inpainting repaints it (about as far from the input).
    assert mean_difference(soft_pixels[:, white], original[:, white]) > 20
    assert mean_difference(hard_pixels[:, white], original[:, white]) > 20
    # 128: changed, but neither the input nor the hard job's picture there, which is the
    # cross-fade of the input and the fully repainted band (half and half).
    assert mean_difference(soft_pixels[:, gray], original[:, gray]) > 5
    assert mean_difference(soft_pixels[:, gray], hard_pixels[:, gray]) > 5


def test_a_mask_without_gray_paints_the_hard_picture_exactly(api):
    binary = bands_mask(gray=255)
    hard = paint(api, binary)
    soft = paint(api, binary, soft="true")
    assert np.array_equal(output_pixels(soft), output_pixels(hard))
    assert "soft_inpainting" not in soft.metadata


def test_the_fill_engines_say_they_did_not_use_soft(api):
    response = post_img2img(
        api, image_png(), bands_mask(), mask_mode="white_inpaints", soft="true", wait="false"
    )
    assert response.status_code == 202, response.content
    generation = wait_for_status(response.json()["id"], timeout=60)
    assert generation.engine == "classical" and generation.status == "succeeded"
    warnings = generation.metadata["warnings"]
    assert [w["field"] for w in warnings] == ["soft"]
    assert "with no diffusion model; soft was not used" in warnings[0]["message"]
