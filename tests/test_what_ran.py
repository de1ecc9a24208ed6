"""Say what ran (issue 39, first part): on a deployment whose default engine fills the mask
with no diffusion model (the classical engine here), a prompted job names in its answer each
field the engine did not follow, natively (``warnings``) and on the AUTOMATIC1111 API
(``info.ignored``, and an infotext that names the engine and no sampling); a mask-less A1111
img2img is a 400 that says a diffusion model is needed, not that a mask covers every pixel.
With the tiny diffusion model the same request carries no such warning."""

from __future__ import annotations

import base64
import json

import pytest

from inpainting.models import Generation
from tests.helpers import black_box_mask_png, image_png, post_img2img

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

SAMPLING = {
    "prompt": "a red ball",
    "num_inference_steps": 3,
    "guidance_scale": 7,
    "scheduler": "Euler a",
}


def test_the_native_answer_names_what_the_fill_engine_did_not_follow(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), **SAMPLING)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["metadata"]["engine"] == "classical"
    warned = [w["field"] for w in body["metadata"]["warnings"]]
    assert warned == ["prompt", "num_inference_steps", "guidance_scale", "scheduler"]
    assert "classical engine fills the mask" in body["metadata"]["warnings"][0]["message"]


def test_with_a_diffusion_model_the_same_request_has_no_such_warning(api):
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="diffusers", **SAMPLING)
    assert response.status_code == 200, response.content
    assert response.json()["metadata"].get("warnings", []) == []


def test_the_a1111_answer_names_them_and_its_infotext_says_which_engine_ran(api):
    body = {
        "init_images": [base64.b64encode(image_png()).decode()],
        "mask": base64.b64encode(black_box_mask_png()).decode(),
        "inpainting_mask_invert": 1,  # A1111: white inpaints; this mask's box is black
        "prompt": "a red ball on a table",
        "steps": 3,
        "sampler_index": "Euler a",
        "cfg_scale": 7,
    }
    response = api.post("/sdapi/v1/img2img", body, format="json")
    assert response.status_code == 200, response.content
    info = json.loads(response.json()["info"])
    assert info["sd_model_name"] == "hybrid-patchmatch-poisson"
    assert {"prompt", "steps", "sampler_name", "cfg_scale"} <= set(info["ignored"])
    (text,) = info["infotexts"]
    assert "Engine: classical" in text
    assert "Steps:" not in text and "Sampler:" not in text and "CFG scale:" not in text


def test_a_maskless_a1111_img2img_says_a_diffusion_model_is_needed(api):
    body = {"init_images": [base64.b64encode(image_png()).decode()], "prompt": "a red ball"}
    response = api.post("/sdapi/v1/img2img", body, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "needs a diffusion model" in detail and "SD 1.5 or SDXL" in detail
    assert "every pixel" not in detail
    assert not Generation.objects.exists()
