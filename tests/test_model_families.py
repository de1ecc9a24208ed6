"""The newer families through the library, the API and a real worker (issue 21): FLUX.1 Fill
and SD 3.5. The scan records each family, ``GET /api/models`` says what it accepts, a job
that names one runs with its defaults, parameters it does not use come back as warnings
(never a silent drop, on the compatible APIs too), and a value outside its range is a 400
that names the model."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.tiny_flow import (
    write_tiny_flux_fill_model,
    write_tiny_sd3_model,
    write_tiny_zimage_model,
)
from tests.helpers import (
    black_box_mask_png,
    compat_submissions,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_until_served,
)
from tests.test_websocket import connect, key_headers, receive_until, submit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def flux_weights(tmp_path_factory):
    return write_tiny_flux_fill_model(tmp_path_factory.mktemp("flux") / "fill")


@pytest.fixture(scope="module")
def sd3_weights(tmp_path_factory):
    return write_tiny_sd3_model(tmp_path_factory.mktemp("sd3") / "medium")


@pytest.fixture(scope="module")
def zimage_weights(tmp_path_factory):
    return write_tiny_zimage_model(tmp_path_factory.mktemp("zimage") / "turbo")


@pytest.fixture
def fill(tmp_path, models_dir, flux_weights, sd3_weights, zimage_weights, monkeypatch):
    """The library holds the tiny FLUX.1 Fill, SD 3 and Z-Image folders (the session's
    worker has them on its disk)."""
    (models_dir / "fill").symlink_to(flux_weights, target_is_directory=True)
    (models_dir / "medium").symlink_to(sd3_weights, target_is_directory=True)
    (models_dir / "turbo").symlink_to(zimage_weights, target_is_directory=True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    library_scan()
    wait_until_served("fill", "medium", "turbo")
    return LibraryModel.objects.get(name="fill")


def test_the_scan_and_the_model_list_tell_the_family_and_what_it_accepts(api, fill):
    assert (fill.family, fill.inpainting, fill.layout) == ("flux", True, "diffusers")
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}["fill"]
    assert listed["family"] == "flux" and listed["family_label"] == "FLUX.1 Fill"
    assert listed["defaults"] == {
        "working_size": 1024,
        "num_inference_steps": 50,
        "guidance_scale": 30.0,
    }
    accepts = listed["accepts"]
    assert accepts["negative_prompt"] is False and accepts["schedulers"] is False
    assert accepts["num_inference_steps"] == {"default": 50, "maximum": 100}
    assert accepts["guidance_scale"] == {"default": 30.0, "minimum": 1.0, "maximum": 100.0}


def test_a_flux_job_runs_with_its_defaults_and_names_what_it_ignored(api, fill):
    generation = run_job(
        api, model="fill", negative_prompt="blurry, low quality", scheduler="Euler a"
    )
    assert (generation.engine, generation.model_name) == ("diffusers", "fill")
    assert generation.params["num_inference_steps"] == 50  # FLUX.1 Fill's, not SD's 30
    assert generation.params["guidance_scale"] == 30.0
    warned = {w["field"]: w["message"] for w in generation.metadata["warnings"]}
    assert set(warned) == {"negative_prompt", "scheduler"}
    assert "FLUX.1 Fill has no negative prompt" in warned["negative_prompt"]
    body = api.get(f"/api/generations/{generation.pk}/").json()
    assert [w["field"] for w in body["metadata"]["warnings"]] == ["negative_prompt", "scheduler"]
    assert body["metadata"]["family"] == "flux"

    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    picture = output_pixels(generation)
    assert np.array_equal(picture[~inside], original[~inside])  # exact preservation
    assert np.abs(picture[inside].astype(int) - original[inside]).mean() > 5


def test_values_outside_the_models_range_are_a_400_naming_it(api, fill):
    for field, value, words in (
        ("num_inference_steps", "120", "at most 100 for the model 'fill' (FLUX.1 Fill)"),
        ("guidance_scale", "0.5", "between 1 and 100 for the model 'fill' (FLUX.1 Fill)"),
    ):
        response = post_img2img(
            api, image_png(), black_box_mask_png(), model="fill", prompt="a rose", **{field: value}
        )
        assert response.status_code == 400, response.content
        assert words in str(response.json()), response.json()
    # 40 is FLUX's to choose but outside SD's 1-20; here it runs.
    assert run_job(api, model="fill", guidance_scale=40, steps=4).params["guidance_scale"] == 40


def test_the_fast_tier_runs_on_flux_and_is_a_400_on_speed_for_a_model_without_it(api, fill):
    response = post_img2img(
        api, image_png(), black_box_mask_png(), model="medium", prompt="a rose", speed="fast"
    )
    assert response.status_code == 400, response.content
    said = response.json()["errors"]["speed"]
    assert "(Stable Diffusion 3.5) has no fast tier here" in said[0], said
    generation = run_job(api, model="fill", steps=4, speed="fast")
    assert generation.metadata["speed"] == "fast" and generation.params["speed"] == "fast"
    body = api.get(f"/api/generations/{generation.pk}/").json()
    assert body["metadata"]["step_cache"] == "first block, threshold 0.08"


def test_an_sd3_job_uses_its_negative_prompt_and_names_the_scheduler_it_ignored(api, fill):
    medium = LibraryModel.objects.get(name="medium")
    assert (medium.family, medium.inpainting) == ("sd3", False)  # SD3 has no inpaint variant
    generation = run_job(
        api, model="medium", negative_prompt="blurry", scheduler="DPM++ 2M", steps=4
    )
    assert generation.params["guidance_scale"] == 4.5  # SD 3.5's default, not SD's 7.5
    assert [w["field"] for w in generation.metadata["warnings"]] == ["scheduler"]
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    assert np.array_equal(output_pixels(generation)[~inside], original[~inside])


def test_the_compatible_apis_answer_the_same_warnings(api, api_key, fill):
    """ModelsLab's client sends a negative prompt and its scheduler to FLUX.1 Fill: the
    picture comes back, and its meta names both as unused."""
    modelslab, _ = compat_submissions(api_key)
    answer = modelslab("fill", negative_prompt="ugly", scheduler="UniPCMultistepScheduler")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "success", body
    fields = [w["field"] for w in body["meta"]["warnings"]]
    assert fields == ["negative_prompt", "scheduler"]


def test_a_z_image_job_runs_turbos_settings(api, fill):
    turbo = LibraryModel.objects.get(name="turbo")
    assert (turbo.family, turbo.inpainting) == ("zimage", False)
    generation = run_job(api, model="turbo")
    assert generation.params["num_inference_steps"] == 9  # Z-Image-Turbo's
    assert generation.params["guidance_scale"] == 0.0  # distilled: no classifier-free guidance
    assert "warnings" not in generation.metadata
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    assert np.array_equal(output_pixels(generation)[~inside], original[~inside])
    # At guidance 0 a negative prompt does nothing: said; with guidance on it counts.
    unused = run_job(api, model="turbo", negative_prompt="blurry", steps=2)
    assert [w["field"] for w in unused.metadata["warnings"]] == ["negative_prompt"]
    assert "only with guidance_scale above 0" in unused.metadata["warnings"][0]["message"]
    used = run_job(api, model="turbo", negative_prompt="blurry", guidance_scale=3, steps=2)
    assert "warnings" not in used.metadata
    response = post_img2img(
        api, image_png(), black_box_mask_png(), model="turbo", prompt="a rose", guidance_scale="12"
    )
    assert response.status_code == 400
    assert "between 0 and 10 for the model 'turbo' (Z-Image)" in response.json()["message"]


@pytest.mark.parametrize("model", ["fill", "medium", "turbo"])
async def test_previews_and_cancel_within_a_step_through_the_worker(api, api_key, fill, model):
    """Each newer family through the websocket: live previews from its latents, and a cancel
    that stops the job within one step."""
    generation_id = await submit(api, model=model, prompt="a rose", steps=100)
    ws = await connect(f"/ws/generations/{generation_id}/", key_headers(api_key))
    messages = []
    while not any("preview" in m for m in messages):  # every 5 steps (INPAINT_PREVIEW_EVERY)
        messages += await receive_until(ws, {"progress"})
    preview = next(m for m in messages if "preview" in m)
    assert preview["step"] == 5 and preview["preview"].startswith("data:image/jpeg;base64,")
    response = await sync_to_async(api.post)(f"/api/generations/{generation_id}/cancel/")
    assert response.json()["status"] == "cancelled"
    step_at_cancel = response.json()["progress"]["step"]
    messages += await receive_until(ws, {"cancelled"})
    await asyncio.sleep(1.0)  # time for any late step to show up
    while not ws.output_queue.empty():
        messages.append(await ws.receive_json_from())
    await ws.disconnect()
    steps = [m["step"] for m in messages if m["type"] == "progress"]
    assert 5 <= step_at_cancel < 100 and max(steps) <= step_at_cancel + 1, (step_at_cancel, steps)
    generation = await Generation.objects.aget(pk=generation_id)
    assert generation.status == "cancelled" and not await generation.images.aexists()


def test_the_deployments_own_model_takes_the_family_it_is_told(api, models_dir, settings):
    """With an empty library the deployment's SD_INPAINT_MODEL runs; SD_INPAINT_FAMILY says
    its family where the web machine has not its files: its defaults, working size and
    warnings apply at submission."""
    from inpainting.conf import deployment_family, engine_config

    settings.SD_INPAINT_FAMILY = "flux"
    assert engine_config().working_size == 64  # INPAINT_WORKING_SIZE of the tests wins
    settings.INPAINT_WORKING_SIZE = 0
    assert engine_config().working_size is None  # the family's, read by the backend
    assert deployment_family().working_size == 1024  # FLUX.1 Fill's
    settings.INPAINT_WORKING_SIZE = 64
    response = post_img2img(
        api, image_png(), black_box_mask_png(), engine="diffusers", wait="false",
        prompt="a (red:1.4) rose",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    assert (generation.params["num_inference_steps"], generation.params["guidance_scale"]) == (
        50,
        30.0,
    )
    assert [w["field"] for w in generation.metadata["warnings"]] == ["prompt"]
