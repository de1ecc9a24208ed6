"""LoRAs (issue 17) through the API and the real worker: tiny random LoRAs in the kohya and
the PEFT layout change the picture, weight 0 is no LoRA, nothing stays loaded after a job,
the prompt's <lora:...> tag and ModelsLab's lora_model do the same, and the library refuses
what cannot work."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from huggingface_hub import constants as hf_constants
from PIL import Image
from rest_framework.test import APIClient

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.tiny_lora import write_tiny_lora
from inpainting.testing.tiny_model import write_tiny_sdxl_inpaint_model
from tests.helpers import (
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_for_status,
    wait_until_served,
)
from tests.images import assert_same_image, box_mask, gradient, png_bytes
from tests.test_compat_modelslab import b64, documented_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def lora_files(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    xl = write_tiny_sdxl_inpaint_model(root / "xl")
    return {
        "ink-peft.safetensors": write_tiny_lora(tiny_model, root / "a", layout="peft"),
        "ink-kohya.safetensors": write_tiny_lora(tiny_model, root / "b", layout="kohya"),
        "contrast-fix.safetensors": write_tiny_lora(tiny_model, root / "c", layout="peft", seed=4),
        "xl-style.safetensors": write_tiny_lora(xl, root / "d", layout="peft"),
    }


@pytest.fixture
def library(tmp_path, models_dir, tiny_model, lora_files, monkeypatch):
    """The tiny SD 1.5 model as "alpha" and as ModelsLab's "lazymixv4-inpaint", and the LoRAs
    in LORAS_DIR (MODELS_DIR/loras, as the worker sees it)."""
    shutil.copytree(tiny_model, models_dir / "alpha")
    shutil.copytree(tiny_model, models_dir / "lazymixv4-inpaint")
    loras = settings.LORAS_DIR
    loras.mkdir(parents=True, exist_ok=True)
    for name, path in lora_files.items():
        shutil.copy(path, loras / name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    wait_until_served("alpha", "lazymixv4-inpaint")


def kept_pixels_are_the_inputs(generation: Generation) -> bool:
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    kept = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    return bool(np.array_equal(output_pixels(generation)[kept], original[kept]))


@pytest.mark.parametrize("name", ["ink-peft.safetensors", "ink-kohya.safetensors"])
def test_a_lora_changes_the_picture_weight_0_does_not_and_it_never_stays(api, library, name):
    plain = output_pixels(run_job(api))
    with_lora = run_job(api, loras=f'[{{"name": "{name}", "weight": 1}}]')
    at_zero = run_job(api, loras=f'[{{"name": "{name}", "weight": 0}}]')
    after = run_job(api)
    assert not np.array_equal(output_pixels(with_lora), plain)
    assert np.array_equal(output_pixels(at_zero), plain)
    assert np.array_equal(output_pixels(after), plain)  # the next job: the model's own weights
    assert all(kept_pixels_are_the_inputs(g) for g in (with_lora, at_zero, after))
    detail = api.get(f"/api/generations/{with_lora.pk}/").json()
    assert detail["metadata"]["loras"] == [{"name": name, "weight": 1.0}]
    rerun = api.post(f"/api/generations/{with_lora.pk}/rerun/").json()
    assert np.array_equal(
        output_pixels(wait_for_status(rerun["id"], timeout=120)), output_pixels(with_lora)
    )


def test_both_layouts_of_the_same_weights_and_the_prompt_tag_give_one_picture(api, library):
    peft = run_job(api, loras='[{"name": "ink-peft", "weight": 0.7}]')
    kohya = run_job(api, loras='[{"name": "ink-kohya.safetensors", "weight": 0.7}]')
    tagged = run_job(api, prompt="a red rose<lora:ink-peft:0.7>")
    assert np.array_equal(output_pixels(peft), output_pixels(kohya))
    assert np.array_equal(
        output_pixels(tagged), output_pixels(peft)
    )  # the tag never reaches the encoder
    assert tagged.params["prompt"] == "a red rose<lora:ink-peft:0.7>"


def test_the_modelslab_seed_example_runs_with_its_lora(api_key, library):
    image = png_bytes(gradient(96, 64))
    mask = png_bytes(box_mask(96, 64, (30, 20, 60, 40), inpaint_white=True))
    client = APIClient()
    answers = {}
    for lora, strength in ((None, None), ("contrast-fix", "0.8")):
        body = documented_body(
            api_key, b64(image), b64(mask), lora_model=lora, lora_strength=strength, seed=9
        )
        response = client.post("/api/v6/images/inpaint", body, format="json")
        assert response.status_code == 200 and response.json()["status"] == "success"
        answers[lora] = Generation.objects.get(pk=response.json()["id"])
    used = answers["contrast-fix"]
    assert used.model_name == "lazymixv4-inpaint"
    assert used.params["loras"] == [{"name": "contrast-fix", "weight": 0.8}]
    assert not np.array_equal(output_pixels(used), output_pixels(answers[None]))


def test_the_loras_listing_and_what_is_refused(api, library):
    listed = {lora["name"]: lora for lora in api.get("/api/loras").json()["loras"]}
    assert set(listed) == {
        "contrast-fix.safetensors",
        "ink-kohya.safetensors",
        "ink-peft.safetensors",
        "xl-style.safetensors",
    }
    assert listed["xl-style.safetensors"]["family"] == "sdxl"
    assert listed["ink-kohya.safetensors"]["family"] == "sd15"
    assert LibraryModel.objects.loras().count() == 4

    def refused(**fields) -> dict:
        fields = {"prompt": "a rose", "engine": "diffusers", **fields}
        response = post_img2img(api, image_png(), black_box_mask_png(), **fields)
        assert response.status_code == 400, response.content
        return response.json()

    body = refused(loras='[{"name": "nope", "weight": 1}]')
    assert body["errors"]["loras"][0].startswith("Unknown LoRA 'nope'; the LoRAs here are: ")
    body = refused(loras='[{"name": "xl-style", "weight": 1}]')
    assert (
        "The LoRA xl-style.safetensors is for Stable Diffusion XL, and the model alpha is "
        "Stable Diffusion 1.5" in body["message"]
    )
    body = refused(prompt="a rose <lora:xl-style:1>")
    assert "is for Stable Diffusion XL" in body["message"]
    body = refused(loras='[{"name": "ink-peft", "weight": 3}]')
    assert "must be between -2 and 2" in body["errors"]["loras"][0]
    six = ", ".join(f'{{"name": "l{i}", "weight": 1}}' for i in range(6))
    assert "At most 5 LoRAs" in refused(loras=f"[{six}]")["errors"]["loras"][0]
    body = refused(loras='[{"name": "ink-peft"}]', engine="classical")
    assert "loras applies to the diffusers engine" in body["message"]
    assert "is not a number" in refused(prompt="<lora:ink-peft:strong>")["message"]
    both = '[{"name": "ink-peft", "weight": 1}, {"name": "ink-peft.safetensors", "weight": 1}]'
    assert "named twice" in refused(loras=both)["message"]
    assert not Generation.objects.exists()


def test_a_classical_job_ignores_lora_tags_in_its_prompt(api, library):
    """The classical engine ignores the prompt: tags there (even malformed ones) are text."""
    for prompt in ("remove it <lora:nope:1>", "remove it <lora:ink-peft:strong>"):
        response = post_img2img(
            api, image_png(), black_box_mask_png(), prompt=prompt, engine="classical", wait="false"
        )
        assert response.status_code == 202, response.content
        generation = wait_for_status(response.json()["id"], timeout=120)
        assert generation.status == "succeeded", generation.error
        detail = api.get(f"/api/generations/{generation.pk}/").json()
        # No LoRA or ControlNet ran: the fields are there (the same shape for every engine), empty.
        assert detail["metadata"]["loras"] == [] and detail["metadata"]["controlnet"] is None


def test_the_cli_takes_loras(library, tmp_path):
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    image.write_bytes(image_png())
    mask.write_bytes(black_box_mask_png())
    pictures = {}
    for label, loras in (("plain", []), ("ink", ["ink-kohya:1"]), ("zero", ["ink-kohya:0"])):
        out = tmp_path / f"{label}.png"
        flags = [f"--lora={lora}" for lora in loras]
        call_command(
            "inpaint",
            *("--image", str(image), "--mask", str(mask), "--out", str(out)),
            *("--prompt", "a red rose", "--model", "alpha", "--seed", "5", *flags),
            stdout=io.StringIO(),
        )
        pictures[label] = np.asarray(Image.open(out).convert("RGB"))
    assert not np.array_equal(pictures["ink"], pictures["plain"])
    assert np.array_equal(pictures["zero"], pictures["plain"])
    with pytest.raises(CommandError, match="is for Stable Diffusion XL"):
        call_command(
            "inpaint",
            *("--image", str(image), "--mask", str(mask), "--out", str(tmp_path / "x.png")),
            *("--prompt", "a rose", "--lora", "xl-style"),
        )


def test_queued_jobs_with_other_loras_never_share_a_batch(api, library, paused_worker):
    """Jobs queued together with and without a LoRA, and at two weights, each get the
    picture they get alone: a batch only mixes jobs with the same LoRAs and weights."""
    weights = {"none": None, "ink": 1, "half": 0.5}

    def fields(label: str) -> dict:
        chosen = weights[label]
        extra = {} if chosen is None else {"loras": f'[{{"name": "ink-peft", "weight": {chosen}}}]'}
        return {"prompt": "a red rose", "engine": "diffusers", "seed": 5, **extra}

    labels = ["none", "ink", "half", "none", "ink", "half"]
    ids = [
        post_img2img(api, image_png(), black_box_mask_png(), wait="false", **fields(label)).json()[
            "id"
        ]
        for label in labels
    ]
    paused_worker.resume()
    done = [wait_for_status(i, timeout=120) for i in ids]
    assert all(g.status == "succeeded" for g in done), [g.error for g in done]
    assert max(g.metadata["batched_jobs"] for g in done) == 2  # batched, never mixed
    for label in weights:
        alone = output_pixels(run_job(api, **fields(label)))
        for generation, its_label in zip(done, labels, strict=True):
            if its_label == label:
                assert_same_image(output_pixels(generation), alone)
