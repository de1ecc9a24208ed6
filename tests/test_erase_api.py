"""Erase mode through the native API and the compatible APIs (issue 84): ``mode=erase`` runs
the best remover here whatever the prompt (LaMa where its file is, else the classical
engine), its mask grown by ``dilate_pixels``, and the job names the remover; a diffusion
model named with it is a 400 on ``mode``; ERASE_WITHOUT_PROMPT turns a compatible API's
prompt-less inpaint into an erase."""

from __future__ import annotations

import base64

import pytest

from inpainting.models import Generation
from tests.helpers import black_box_mask_png, image_png, post_img2img
from tests.images import box_mask, png_bytes

pytestmark = pytest.mark.django_db


def test_erase_runs_the_classical_engine_without_lama_and_names_it(api):
    answer = post_img2img(
        api, image_png(), black_box_mask_png(), mode="erase", dilate_pixels=14,
        prompt="a red rose", wait="false",
    )  # fmt: skip
    assert answer.status_code == 202, answer.content
    job = Generation.objects.get(pk=answer.json()["id"])
    assert job.engine == "classical" and job.params["mode"] == "erase"
    assert job.metadata["erase"] == {"remover": "classical", "dilate_pixels": 14}
    # The prompt is not followed by a remover: the answer says so.
    assert "prompt" in [w["field"] for w in job.metadata["warnings"]]


def test_erase_runs_lama_where_its_file_is(api, settings, tiny_lama):
    settings.LAMA_MODEL = str(tiny_lama.fixed)
    answer = post_img2img(api, image_png(), black_box_mask_png(), mode="erase", wait="false")
    assert answer.status_code == 202, answer.content
    job = Generation.objects.get(pk=answer.json()["id"])
    assert job.engine == "lama" and job.metadata["erase"]["remover"] == "lama"


def test_erase_with_a_diffusion_model_named_or_a_dilation_out_of_range_is_a_400(api):
    named = post_img2img(
        api, image_png(), black_box_mask_png(), mode="erase", engine="diffusers", wait="false"
    )
    assert named.status_code == 400 and "mode" in named.json()["errors"], named.content
    too_far = post_img2img(
        api, image_png(), black_box_mask_png(), mode="erase", dilate_pixels=101, wait="false"
    )
    assert too_far.status_code == 400 and "dilate_pixels" in too_far.json()["errors"]
    assert Generation.objects.count() == 0


@pytest.mark.parametrize("erase_without_prompt", [False, True])
def test_a_compatible_apis_prompt_less_inpaint_erases_where_the_server_says_so(
    keyed_api, settings, erase_without_prompt
):
    settings.ERASE_WITHOUT_PROMPT = erase_without_prompt
    photo = base64.b64encode(image_png()).decode()
    mask = base64.b64encode(png_bytes(box_mask(96, 64, (30, 18, 62, 44), inpaint_white=True)))
    mask = mask.decode()
    answer = keyed_api.post(
        "/v1/engine/generate",
        {"inpaint_input_image": photo, "inpaint_mask_image_upload": mask, "async_process": True},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    job = Generation.objects.get(pk=answer.json()["task_id"])
    assert job.params["mode"] == ("erase" if erase_without_prompt else "inpaint")
    assert ("erase" in job.metadata) is erase_without_prompt
