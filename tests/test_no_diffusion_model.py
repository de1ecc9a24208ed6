"""Say what ran (issue 39): on a stack with no diffusion model (``make run``'s defaults:
INPAINT_ENGINE=auto, LOAD_SD_INPAINT off, so a fill engine runs) no model list offers a
checkpoint, even one the library holds, and the studio says before Generate that a prompt will
not be followed; a prompted job on every surface answers, in that API's own shape, that the
prompt (and the sampling sent) was not used. With the tiny diffusion model on, the same
requests carry no such warning."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from PIL import Image

from inpainting.conf import STATUS_KEY, model_status, record_model_status
from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from tests.helpers import BOX, compat_submissions, image_png, post_img2img
from tests.images import box_mask, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

#: A1111's title of the fill engine that runs here.
FILL_TITLE = "classical (fill engine: no prompt)"
WHITE_MASK = png_bytes(box_mask(96, 64, BOX, inpaint_white=True))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture
def no_diffusion(settings):
    settings.INPAINT_ENGINE = "auto"
    settings.LOAD_SD_INPAINT = False


@pytest.fixture
def diffusion(settings):
    """The tiny diffusion model on (the tests' SD_INPAINT_MODEL), chosen for a prompt."""
    settings.INPAINT_ENGINE = "auto"
    settings.LOAD_SD_INPAINT = True


@pytest.fixture
def library_model(models_dir, tiny_model):
    """A diffusion model the library holds (the tiny model, copied in and scanned): offered
    only while diffusion runs."""
    shutil.copytree(tiny_model, models_dir / "sd15-inpaint")
    library_scan()
    return LibraryModel.objects.get(name="sd15-inpaint")


# ----- the model lists ----------------------------------------------------------------------
@pytest.mark.usefixtures("no_diffusion", "library_model")
def test_no_model_list_offers_a_checkpoint_that_cannot_run(api, client, user):
    listed = api.get("/api/models").json()
    assert listed == {"default": None, "models": [], "fill_engine": "classical"}

    (only,) = api.get("/sdapi/v1/sd-models").json()
    assert only["title"] == FILL_TITLE and only["model_name"] == "classical"
    assert only["hash"] is None
    options = api.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == FILL_TITLE
    # A client that switches to what sd-models listed gets A1111's null, not an error.
    switched = api.post("/sdapi/v1/options", {"sd_model_checkpoint": FILL_TITLE}, format="json")
    assert switched.status_code == 200 and switched.content == b"null"
    refused = api.post("/sdapi/v1/options", {"sd_model_checkpoint": "sd15-inpaint"}, format="json")
    assert refused.status_code == 400
    assert "no diffusion model runs here" in refused.json()["detail"]

    health = client.get("/sd-inpaint/health").json()
    assert health["model"] == "hybrid-patchmatch-poisson" and health["fill_engine"] is True
    native = client.get("/api/health").json()
    assert native["engine"] == "classical" and native["fill_engine"] is True

    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'id="no-diffusion-note"' in page and "does not follow a prompt" in page
    assert 'id="model"' not in page and "sd15-inpaint" not in page


@pytest.mark.usefixtures("diffusion", "library_model")
def test_with_diffusion_on_the_lists_offer_the_library(api, client, user):
    listed = api.get("/api/models").json()
    assert listed["default"] == "sd15-inpaint" and listed["fill_engine"] is None
    (only,) = api.get("/sdapi/v1/sd-models").json()
    assert only["model_name"] == "sd15-inpaint" and only["hash"]
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == only["title"]
    assert client.get("/sd-inpaint/health").json()["fill_engine"] is False
    client.force_login(user)
    page = client.get("/").content.decode()
    assert 'id="no-diffusion-note"' not in page and 'value="sd15-inpaint"' in page


# ----- a prompted job on each surface ---------------------------------------------------------
def submit_everywhere(api, keyed_api, api_key) -> dict[str, list[str]]:
    """The same prompted request (a prompt, 3 steps, guidance 7 where the API has them) on
    every surface; the fields each answer names as not used, by that API's names."""
    found = {}
    native = post_img2img(
        api,
        image_png(),
        png_bytes(box_mask(96, 64, BOX, inpaint_white=False)),
        prompt="a red ball",
        num_inference_steps=3,
        guidance_scale=7,
    )
    assert native.status_code == 200, native.content
    found["native"] = [w["field"] for w in native.json()["metadata"].get("warnings", [])]

    a1111 = api.post(
        "/sdapi/v1/img2img",
        {
            "init_images": [base64.b64encode(image_png()).decode()],
            "mask": base64.b64encode(WHITE_MASK).decode(),
            "prompt": "a red ball on a table",
            "steps": 3,
            "sampler_index": "Euler a",
            "cfg_scale": 7,
            "override_settings": {"sd_model_checkpoint": FILL_TITLE},
        },
        format="json",
    )
    assert a1111.status_code == 200, a1111.content
    found["a1111"] = json.loads(a1111.json()["info"])["ignored"]

    sd_inpaint = keyed_api.post(
        "/sd-inpaint/inpaint",
        {
            "image": io.BytesIO(image_png()),
            "mask": io.BytesIO(WHITE_MASK),
            "prompt": "a red ball",
            "num_inference_steps": 3,
        },
        format="multipart",
    )
    assert sd_inpaint.status_code == 200, sd_inpaint.content
    found["sd_inpaint"] = [f for f in sd_inpaint.headers.get("X-Warnings", "").split(", ") if f]

    modelslab, fooocus = compat_submissions(api_key)
    ml = modelslab("sd15-inpaint", guidance_scale=7)
    assert ml.status_code == 200 and ml.json()["status"] == "success", ml.content
    found["modelslab"] = [w["field"] for w in ml.json()["meta"].get("warnings", [])]
    fo = fooocus("sd15-inpaint")
    assert fo.status_code == 200, fo.content
    found["fooocus"] = [w["field"] for w in fo.json()["warnings"]]

    rgba = Image.new("RGBA", (96, 64), (0, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), BOX)
    edit = keyed_api.post(
        "/v1/images/edits",
        {
            "image": io.BytesIO(image_png()),
            "mask": io.BytesIO(png_bytes(rgba)),
            "prompt": "a red ball",
            "model": "gpt-image-1",
        },
        format="multipart",
    )
    assert edit.status_code == 200, edit.content
    found["openai"] = [w["field"] for w in edit.json()["warnings"]]

    deep = keyed_api.post(
        "/rest_api/process_result",
        {
            "url": data_url(image_png()),
            "background": {
                "generate": {
                    "adapter_type": "inpainting",
                    "description": "a red ball",
                    "ip_image2": data_url(WHITE_MASK),
                }
            },
        },
        format="json",
    )
    assert deep.status_code == 200 and deep.json()["status"] == "complete", deep.content
    found["deepimage"] = [w["field"] for w in deep.json()["warnings"]]
    return found


@pytest.mark.usefixtures("no_diffusion", "library_model")
def test_every_surface_names_what_the_fill_engine_did_not_follow(api, keyed_api, api_key):
    found = submit_everywhere(api, keyed_api, api_key)
    assert found["native"] == ["prompt", "num_inference_steps", "guidance_scale"]
    assert {"prompt", "steps", "sampler_name", "cfg_scale"} <= set(found["a1111"])
    checkpoint = "sd_model_checkpoint (no diffusion model"
    assert any(item.startswith(checkpoint) for item in found["a1111"])
    assert found["sd_inpaint"] == ["prompt", "num_inference_steps"]
    assert {"prompt", "num_inference_steps", "guidance_scale"} <= set(found["modelslab"])
    assert found["fooocus"][0] == "prompt"
    assert found["openai"] == ["prompt"]
    assert found["deepimage"] == ["generative_fill.description"]


@pytest.mark.usefixtures("diffusion")
def test_with_the_tiny_diffusion_model_the_same_requests_warn_of_nothing(api, keyed_api, api_key):
    found = submit_everywhere(api, keyed_api, api_key)
    assert found["native"] == [] and found["sd_inpaint"] == []
    assert found["modelslab"] == [] and found["fooocus"] == []
    assert found["openai"] == [] and found["deepimage"] == []
    # A1111: the sampler runs (Euler a), the checkpoint is the deployment's own; nothing the
    # engine did not follow.
    assert not {"prompt", "steps", "sampler_name", "cfg_scale"} & set(found["a1111"])


@pytest.mark.usefixtures("diffusion")
def test_a_deployment_model_no_worker_could_load_is_not_listed(api):
    before = model_status()
    listed = api.get("/sdapi/v1/sd-models").json()
    assert [m["model_name"] for m in listed] == [Path(settings.SD_INPAINT_MODEL).name]  # no path
    record_model_status(loaded=False, model=settings.SD_INPAINT_MODEL, error="no such folder")
    try:
        assert api.get("/sdapi/v1/sd-models").json() == []
        assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"] is None
    finally:
        cache.set(STATUS_KEY.format(engine="diffusers"), before, timeout=None)


@pytest.mark.usefixtures("no_diffusion")
def test_a_job_naming_a_model_not_installed_is_told_what_is_missing_without_a_mask(api):
    """Issue 53: "remove the cup" with ``model=qwen-edit-2509`` and no mask answered "The
    'diffusers' engine is not loaded": the missing model is what to name, with how to install
    it, in the words every surface uses (``library_model_missing``)."""
    response = post_img2img(
        api, image_png(), None, prompt="remove the cup", model="qwen-edit-2509", wait="false"
    )
    assert response.status_code == 400, response.content
    message = response.json()["message"]
    assert "No model named 'qwen-edit-2509' is installed here" in message, message
    assert "ask the server's staff to install it" in message  # staff read how
    assert "not loaded" not in message


def test_text_to_image_without_a_diffusion_model_is_a_400_in_each_apis_shape(
    no_diffusion, keyed_api
):
    """AUTOMATIC1111's txt2img and OpenAI's generations need a diffusion model (issue 83): with
    a fill engine only, each answers in its own error shape that one is needed, before any
    canvas is made or job stored."""
    a1111 = keyed_api.post(
        "/sdapi/v1/txt2img", {"prompt": "a cat", "width": 64, "height": 64}, format="json"
    )
    assert a1111.status_code == 400, a1111.content
    assert "Text to image paints a new picture from the prompt alone, which needs a diffusion " \
        "model" in a1111.json()["detail"]  # fmt: skip
    assert list(a1111.json()["errors"]) == ["prompt"]
    openai = keyed_api.post(
        "/v1/images/generations", {"prompt": "a cat", "size": "64x64"}, format="json"
    )
    assert openai.status_code == 400, openai.content
    error = openai.json()["error"]
    assert "needs a diffusion model" in error["message"] and error["param"] == "prompt"
    assert Generation.objects.count() == 0
