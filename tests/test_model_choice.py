"""A job names its model (issue 16): the native API, the CLI, re-run; the worker runs that
library model; an unknown model is a 400 that lists the models there are."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.engine.backends.loading import load_pipeline
from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.original_layout import write_single_file
from inpainting.testing.tiny_model import write_tiny_inpaint_model
from tests.helpers import (
    black_box_mask_png,
    compat_submissions,
    image_png,
    post_img2img,
    wait_for_status,
    wait_until_served,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def beta_model(tmp_path_factory):
    return write_tiny_inpaint_model(tmp_path_factory.mktemp("beta") / "beta", seed=1)


@pytest.fixture(scope="module")
def gamma_file(tmp_path_factory, tiny_model):
    """The tiny model (alpha's weights) as a single-file checkpoint in the original layout."""
    pipe = load_pipeline(str(tiny_model), "cpu", cache_size=2)
    return write_single_file(pipe, tmp_path_factory.mktemp("gamma") / "gamma.safetensors")


@pytest.fixture
def two_models(tmp_path, models_dir, tiny_model, beta_model, gamma_file, tiny_configs, monkeypatch):
    """The library holds two tiny SD 1.5 inpainting models with different weights, and the
    first one again as a single-file checkpoint."""
    root = models_dir
    shutil.copytree(tiny_model, root / "alpha")
    shutil.copytree(beta_model, root / "beta")
    shutil.copy(gamma_file, root / "gamma.safetensors")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    wait_until_served(*LibraryModel.objects.checkpoints().values_list("name", flat=True))
    return root


def output(generation: Generation) -> np.ndarray:
    with generation.images.get(index=0).file.open("rb") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def submit(api, **fields):
    fields = {"prompt": "a red rose", "engine": "diffusers", "seed": 5, "wait": "false", **fields}
    response = post_img2img(api, image_png(), black_box_mask_png(), **fields)
    assert response.status_code == 202, response.content
    return wait_for_status(response.json()["id"], timeout=120)


def test_a_job_runs_the_model_it_names_and_the_default_otherwise(api, two_models):
    beta = submit(api, model="beta")
    default = submit(api)
    assert (beta.status, default.status) == ("succeeded", "succeeded")
    assert (beta.model_name, default.model_name) == ("beta", "alpha")
    assert not np.array_equal(output(beta), output(default))  # other weights, other pixels
    # Outside the mask every pixel is the input's, whatever the model.
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    untouched = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    assert untouched.any() and np.array_equal(output(beta)[untouched], original[untouched])
    detail = api.get(f"/api/generations/{beta.pk}/").json()
    assert detail["metadata"]["model"] == "beta"
    # A re-run keeps the model; the same seed gives the same picture.
    rerun = api.post(f"/api/generations/{beta.pk}/rerun/").json()
    again = wait_for_status(rerun["id"], timeout=120)
    assert again.model_name == "beta" and np.array_equal(output(again), output(beta))


def test_an_unknown_model_is_a_400_that_lists_the_models(api, staff_api, two_models):
    response = post_img2img(api, image_png(), black_box_mask_png(), prompt="x", model="delta")
    assert response.status_code == 400
    body = response.json()
    (message,) = body["errors"]["model"]
    assert message.startswith(
        "No model named 'delta' is installed here (the models: alpha, beta, gamma.safetensors; "
        "GET /api/models); models that edit by words: "
    )
    assert message.endswith("Name one of them, or ask the server's staff to install it.")
    # Staff read how to install one too.
    staff = post_img2img(staff_api, image_png(), black_box_mask_png(), prompt="x", model="delta")
    told = staff.json()["message"]
    assert told.startswith(message) and "To install one: `manage.py models install <Hugging" in told
    assert "`manage.py models scan`" in told
    response = post_img2img(
        api, image_png(), black_box_mask_png(), prompt="x", model="beta", engine="classical"
    )
    assert response.status_code == 400 and "diffusers engine" in response.json()["message"]
    assert not Generation.objects.exists()


def test_the_cli_takes_a_model(two_models, tmp_path):
    image, mask = tmp_path / "in.png", tmp_path / "mask.png"
    image.write_bytes(image_png())
    mask.write_bytes(black_box_mask_png())
    pictures = {}
    for name in ("alpha", "beta"):
        out = tmp_path / f"{name}.png"
        call_command(
            "inpaint",
            "--image",
            str(image),
            "--prompt",
            "a red rose",
            "--mask",
            str(mask),
            "--out",
            str(out),
            "--model",
            name,
            "--seed",
            "5",
            stdout=io.StringIO(),
        )
        picture = Image.open(out)
        assert f'"model": "{name}"' in picture.info["dreamlayer"]
        pictures[name] = np.asarray(picture.convert("RGB"))
    assert not np.array_equal(pictures["alpha"], pictures["beta"])
    with pytest.raises(CommandError, match="No model named 'delta' is installed here"):
        call_command(
            "inpaint",
            "--image",
            str(image),
            "--prompt",
            "x",
            "--mask",
            str(mask),
            "--out",
            str(tmp_path / "x.png"),
            "--model",
            "delta",
        )


def test_modelslab_model_id_and_fooocus_base_model_name_pick_the_model(api_key, two_models):
    modelslab, fooocus = compat_submissions(api_key)
    assert modelslab("beta").json()["status"] in ("success", "processing")
    assert fooocus("Beta.safetensors").status_code == 200
    made = Generation.objects.order_by("created_at")
    assert [(g.client, g.model_name) for g in made] == [("modelslab", "beta"), ("fooocus", "beta")]
    refused = modelslab("lazymixv4-inpaint")
    assert refused.status_code == 400
    assert (
        "No model named 'lazymixv4-inpaint' is installed here (the models: alpha, beta, "
        "gamma.safetensors;" in refused.json()["message"]
    )
    refused = fooocus("juggernautXL_v8Rundiffusion.safetensors")
    assert refused.status_code == 400 and "(the models: alpha, beta, gamma" in str(refused.json())
    assert Generation.objects.count() == 2


def test_a_single_file_checkpoint_runs_on_the_worker_as_its_folder_does(api, two_models):
    """gamma.safetensors holds alpha's weights in the original layout: the worker loads it
    with the sd15-inpainting configuration and paints alpha's picture."""
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["gamma.safetensors"]["layout"] == "single-file"
    assert listed["gamma.safetensors"]["runnable"] is True
    single = submit(api, model="gamma.safetensors")
    folder = submit(api, model="alpha")
    assert single.status == "succeeded", single.error
    assert single.model_name == "gamma.safetensors"
    assert np.array_equal(output(single), output(folder))


def test_queued_jobs_of_two_models_never_share_a_batch(api, two_models, paused_worker):
    """Batching only mixes jobs of one model: alpha and beta queued together each run on
    their own model and give the picture that model gives alone."""
    ids = []
    for model in ("alpha", "beta", "alpha", "beta"):
        fields = {"prompt": "a red rose", "seed": 5, "wait": "false", "model": model}
        response = post_img2img(api, image_png(), black_box_mask_png(), **fields)
        ids.append(response.json()["id"])
    paused_worker.resume()
    done = [wait_for_status(i, timeout=120) for i in ids]
    assert [g.model_name for g in done] == ["alpha", "beta", "alpha", "beta"]
    assert all(g.status == "succeeded" for g in done)
    assert np.array_equal(output(done[0]), output(done[2]))
    assert np.array_equal(output(done[1]), output(done[3]))
    assert not np.array_equal(output(done[0]), output(done[1]))
    assert all(g.metadata["batched_jobs"] <= 2 for g in done)


def test_a_model_disabled_after_queueing_fails_its_job_clearly(api, two_models, paused_worker):
    fields = {"prompt": "a red rose", "wait": "false", "model": "beta"}
    generation_id = post_img2img(api, image_png(), black_box_mask_png(), **fields).json()["id"]
    LibraryModel.objects.filter(name="beta").update(enabled=False)
    paused_worker.resume()
    failed = wait_for_status(generation_id, timeout=120)
    assert failed.status == "failed"
    assert "'beta' is no longer in the library" in failed.error


def test_blank_model_is_the_default_and_a_rerun_keeps_the_model_it_ran(api, two_models):
    first = submit(api, model="")
    assert first.model_name == "alpha" and first.params["model"] is None
    assert (
        "model_load_seconds" in first.metadata
        or "model_load_seconds" in submit(api, model="beta").metadata
    )
    LibraryModel.objects.update(is_default=False)
    LibraryModel.objects.filter(name="beta").update(is_default=True)
    rerun = api.post(f"/api/generations/{first.pk}/rerun/").json()
    again = wait_for_status(rerun["id"], timeout=120)
    assert again.model_name == "alpha" and np.array_equal(output(again), output(first))


def a1111_inpaint(client, **fields) -> Generation:
    body = {
        "init_images": [base64.b64encode(image_png()).decode()],
        "mask": base64.b64encode(black_box_mask_png()).decode(),
        "prompt": "a red rose",
        "steps": 2,
        "seed": 5,
        **fields,
    }
    response = client.post("/sdapi/v1/img2img", body, format="json")
    assert response.status_code == 200, response.content
    return Generation.objects.get(pk=json.loads(response.json()["info"])["dreamlayer_id"])


def test_a1111_options_switch_the_checkpoint_of_the_callers_jobs_only(api, other_api, two_models):
    """openOutpaint's "switch model": ``POST /sdapi/v1/options`` with ``sd_model_checkpoint``
    (a title from sd-models) changes what the caller's A1111 jobs run, not another user's."""
    titles = [m["title"] for m in api.get("/sdapi/v1/sd-models").json()]
    beta = next(title for title in titles if title.startswith("beta"))
    alpha = next(title for title in titles if title.startswith("alpha"))
    switched = api.post("/sdapi/v1/options", {"sd_model_checkpoint": beta}, format="json")
    assert (switched.status_code, switched.json()) == (200, None)
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == beta
    assert other_api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == alpha
    assert a1111_inpaint(api).model_name == "beta"
    # The other user chose nothing: the deployment's default engine (classical in the tests).
    assert a1111_inpaint(other_api).engine == "classical"
    other_api.post("/sdapi/v1/options", {"sd_model_checkpoint": "alpha"}, format="json")
    assert a1111_inpaint(other_api).model_name == "alpha"
    assert a1111_inpaint(api).model_name == "beta"
    # A request's own override still wins; the native API keeps the deployment's default.
    override = {"sd_model_checkpoint": "alpha"}
    assert a1111_inpaint(api, override_settings=override).model_name == "alpha"
    assert submit(api).model_name == "alpha"
    # An unknown model is a 400 that lists the models, and the choice stays.
    refused = api.post("/sdapi/v1/options", {"sd_model_checkpoint": "delta"}, format="json")
    assert refused.status_code == 400
    assert (
        "No model named 'delta' is installed here (the models: alpha, beta"
        in (refused.json()["detail"])
    )
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == beta
    # A chosen model that staff disable falls back to the default.
    LibraryModel.objects.filter(name="beta").update(enabled=False)
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == alpha
