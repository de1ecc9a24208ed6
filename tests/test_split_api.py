"""A picture split into layers as a job (issue 80, ``services.splits``): a layer model of the
library (the tiny Qwen-Image-Layered in LAYER_MODELS_DIR), ``POST /api/layers/split``, the
worker's run, its RGBA layers as the job's outputs, and the refusals before anything is
stored."""

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inpainting import gate
from inpainting.models import Generation, LibraryModel
from inpainting.services import runs
from inpainting.services.library import library_scan
from tests.helpers import H, W, image_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def layer_model(models_dir, tiny_qwen_layered):
    """LAYER_MODELS_DIR with the tiny Qwen-Image-Layered as "qwen-layered", scanned."""
    root = Path(settings.LAYER_MODELS_DIR)
    shutil.copytree(tiny_qwen_layered, root / "qwen-layered")
    report = library_scan()
    assert "layers/qwen-layered" in report.added, report
    return LibraryModel.objects.layer_models().get()


def split(api, **fields):
    data = {"image": SimpleUploadedFile("photo.png", image_png()), "wait": "false", **fields}
    return api.post("/api/layers/split", data, format="multipart")


def test_a_picture_splits_into_rgba_layers_as_a_job_in_the_history(api, layer_model, client, user):
    assert layer_model.family == "qwen-layered" and layer_model.name == "qwen-layered"
    listed = api.get("/api/layer-models").json()["layer_models"]
    assert [m["name"] for m in listed] == ["qwen-layered"]
    assert "qwen-layered" not in str(api.get("/api/models").json())  # it does not inpaint
    response = split(api, layers="3", prompt="a gradient", num_inference_steps="2", seed="3")
    assert response.status_code == 202, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    assert generation.is_split and generation.params["split"] == {"layers": 3, "resolution": 640}

    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["status"] == "succeeded", detail["error"]
    assert len(detail["images"]) == 3 and detail["metadata"]["split"]["layers"] == 3
    assert detail["metadata"]["seed"] == 3 and detail["metadata"]["layers_made"] == 3
    for url in detail["images"]:
        got = api.get(url.removeprefix("http://testserver"))
        layer = Image.open(io.BytesIO(b"".join(got.streaming_content)))
        assert layer.mode == "RGBA" and layer.size == (W, H)
    alpha = np.stack(
        [np.asarray(Image.open(g.file).convert("RGBA"))[..., 3] for g in generation.images.all()]
    )
    assert alpha.shape == (3, H, W)
    client.force_login(user)
    assert "Split into 3 layers" in client.get("/history/").content.decode()
    rerun = api.post(f"/api/generations/{generation.pk}/rerun/")
    assert rerun.status_code == 201, rerun.content
    again = Generation.objects.get(pk=rerun.json()["id"])
    assert again.is_split and again.params["split"] == generation.params["split"]
    assert again.params["seed"] == 3 and again.model_name == "qwen-layered"


def test_what_a_split_may_not_ask_is_refused_before_anything_is_stored(api, models_dir):
    assert split(api).status_code == 400  # no layer model installed
    assert "cannot be split" in split(api).json()["message"]
    for fields, field in (
        ({"layers": "1"}, "layers"),
        ({"layers": "9"}, "layers"),
        ({"resolution": "512"}, "resolution"),
    ):
        response = split(api, **fields)
        assert response.status_code == 400 and field in response.json()["errors"], response.json()
    assert not Generation.objects.exists()


def test_an_unknown_layer_model_is_a_400_naming_the_list(api, layer_model):
    response = split(api, model="nope")
    assert response.status_code == 400 and "GET /api/layer-models" in response.json()["message"]


def test_the_web_process_decodes_the_picture_once_through_the_gate(api, layer_model, gate_asks):
    """A split costs the web process one upload's pixel work (the split itself is a worker's)."""
    assert split(api).status_code == 202
    assert gate_asks == [(gate.JOB_UPLOADS, ((W, H),))]
