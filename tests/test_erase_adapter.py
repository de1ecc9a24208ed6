"""Erase mode's best remover (issue 84): an erase adapter of the library (the tiny FLUX.2
[klein] LoRA with its prompt embedding, laid out as slopshop/erase-v1) runs on the library's
[klein] model through a real worker, the photo and the grown mask its two references; the
answer names the adapter and the model; ModelsLab's ``object_removal`` reaches it; without a
model of its family the job falls back to the classical engine."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient

from inpainting import fleet
from inpainting.engine import effective_mask
from inpainting.models import Generation, LibraryModel
from inpainting.params import GenerationParams
from tests.helpers import (
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    wait_for_status,
)
from tests.images import box_mask, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_the_scan_records_the_adapter_for_its_family(eraser_library):
    assert (eraser_library.family, eraser_library.layout) == ("flux2-klein", "adapter")
    assert eraser_library.details["embedding"] == "prompt_embeds.safetensors"
    assert eraser_library.details["lora"] == "erase_v1_diffusers.safetensors"


def test_an_erase_runs_the_adapter_on_the_klein_model_and_keeps_every_other_pixel(
    api, eraser_library
):
    answer = post_img2img(
        api, image_png(), black_box_mask_png(), mode="erase", dilate_pixels=6, seed=2,
        prompt="a red rose", wait="false",
    )  # fmt: skip
    assert answer.status_code == 202, answer.content
    job = wait_for_status(answer.json()["id"], timeout=120)
    assert job.status == "succeeded", job.error
    assert job.engine == "diffusers" and job.library_model.name == "klein"
    assert job.metadata["erase"] == {
        "remover": "diffusers", "dilate_pixels": 6, "adapter": "erase-v1", "model": "klein",
    }  # fmt: skip
    assert job.metadata["edit"] == "erase" and job.metadata["reference_images"] == 2
    assert job.metadata["eraser_prompt"] == "embedding"
    # Its own words and steps: the prompt sent is named as unused, the 4 distilled steps run.
    assert "prompt" in [w["field"] for w in job.metadata["warnings"]]
    assert job.params["num_inference_steps"] == 4
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    params = GenerationParams(mode="erase", dilate_pixels=6)
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    grown = effective_mask(mask, original.shape[1::-1], params.mask_options) > 0
    out = output_pixels(job)
    assert np.array_equal(out[~grown], original[~grown])
    assert (out[grown] != original[grown]).any(axis=1).mean() > 0.5


def test_modelslab_object_removal_reaches_the_adapter(api_key, eraser_library):
    mask = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))
    body = {
        "key": api_key,
        "init_image": base64.b64encode(image_png()).decode(),
        "mask_image": base64.b64encode(mask).decode(),
    }
    answer = APIClient().post("/api/v6/image_editing/object_removal", body, format="json")
    assert answer.status_code == 200, answer.content
    job = Generation.objects.get(pk=answer.json()["id"])
    assert job.status == "succeeded" and job.metadata["erase"]["adapter"] == "erase-v1"
    assert job.metadata["erase"]["dilate_pixels"] == 10  # the default


@pytest.mark.parametrize("why", ["disabled", "no worker serves it"])
def test_without_a_model_of_its_family_to_run_the_classical_engine_removes(
    api, eraser_library, monkeypatch, why
):
    if why == "disabled":
        LibraryModel.objects.filter(name="klein").update(enabled=False)
    else:  # as the fleet's reports say once its worker stopped
        serving = fleet.workers_serving
        monkeypatch.setattr(fleet, "workers_serving", lambda n: [] if n == "klein" else serving(n))
    answer = post_img2img(api, image_png(), black_box_mask_png(), mode="erase", wait="false")
    assert answer.status_code == 202, answer.content
    job = Generation.objects.get(pk=answer.json()["id"])
    assert job.engine == "classical" and "adapter" not in job.metadata["erase"]


def test_the_cli_erases_with_the_adapter(eraser_library, tmp_path):
    (tmp_path / "in.png").write_bytes(image_png())
    (tmp_path / "mask.png").write_bytes(black_box_mask_png())
    out = io.StringIO()
    call_command(
        "inpaint", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
        "--mode", "erase", "--seed", "1", "--out", str(tmp_path / "out.png"), stdout=out,
    )  # fmt: skip
    written = Image.open(tmp_path / "out.png")
    parameters = json.loads(written.info["dreamlayer"])
    assert (parameters["engine"], parameters["model"]) == ("diffusers", "klein")
    assert parameters["mode"] == "erase" and "(96x64, seed 1)" in out.getvalue()
