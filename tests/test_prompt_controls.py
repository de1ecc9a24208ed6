"""Prompt weighting, long prompts and clip skip through the API and the real worker (issue 17):
each changes the picture inside the mask only, is recorded, and a re-run repeats it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation
from tests.helpers import (
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_for_status,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_weights_long_prompts_and_clip_skip_change_the_masked_pixels_only(api):
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    kept = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    plain = run_job(api, prompt="a red rose")
    weighted = run_job(api, prompt="a (red:1.5) rose")
    skipped = run_job(api, prompt="a red rose", clip_skip=2)
    long = run_job(api, prompt=" ".join(["a red rose"] * 67))  # 201 words
    pictures = [output_pixels(g) for g in (plain, weighted, skipped, long)]
    for picture in pictures:
        assert np.array_equal(picture[kept], original[kept])
    for other in pictures[1:]:
        assert not np.array_equal(other, pictures[0])
    assert skipped.params["clip_skip"] == 2 and weighted.params["prompt"] == "a (red:1.5) rose"
    detail = api.get(f"/api/generations/{skipped.pk}/").json()
    assert detail["metadata"]["clip_skip"] == 2
    rerun = api.post(f"/api/generations/{skipped.pk}/rerun/").json()
    again = wait_for_status(rerun["id"], timeout=120)
    assert again.params["clip_skip"] == 2 and np.array_equal(output_pixels(again), pictures[2])


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("prompt", "a (red rose", "The prompt has a '(' that is never closed, at character 3"),
        ("negative_prompt", "blurry]", "The negative_prompt has a ']' that closes nothing"),
    ],
)
def test_a_prompt_that_cannot_be_read_is_a_400_that_says_where(api, field, text, message):
    fields = {"prompt": "a rose", "engine": "diffusers", field: text}
    response = post_img2img(api, image_png(), black_box_mask_png(), **fields)
    assert response.status_code == 400
    assert message in response.json()["errors"][field][0]
    assert not Generation.objects.exists()


def test_clip_skip_out_of_range_is_a_400(api):
    response = post_img2img(
        api, image_png(), black_box_mask_png(), prompt="a rose", engine="diffusers", clip_skip=5
    )
    assert response.status_code == 400 and "clip_skip" in response.json()["errors"]
