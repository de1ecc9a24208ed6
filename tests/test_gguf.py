"""Quantized GGUF transformers (issue 57): a FLUX.1 Fill transformer the test writes as the
community's GGUF files hold it (Q8_0 and Q4_0, what gguf-py can write; diffusers also reads the
K-quants), scanned from its header with its quantization, run through the worker with the
other parts of the installed diffusers FLUX.1 Fill beside it, pixels outside the mask the
input's. At FLUX.1's width (diffusers' conversion of Black Forest Labs' keys assumes it): one
block of each kind."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from diffusers import FluxTransformer2DModel
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask, memory
from inpainting.engine.probe import read_gguf
from inpainting.models import Generation, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.original_layout import write_flux_gguf
from inpainting.testing.tiny_flow import write_tiny_flux_fill_model
from tests.helpers import (
    black_box_mask_png,
    image_png,
    post_img2img,
    wait_for_status,
    wait_until_served,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
    pytest.mark.heavy,
]


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    folder = write_tiny_flux_fill_model(root / "fill", flux_width=True)
    transformer = FluxTransformer2DModel.from_pretrained(folder, subfolder="transformer")
    q8 = write_flux_gguf(transformer, root / "fill-q8.gguf", "Q8_0")
    q4 = write_flux_gguf(transformer, root / "fill-q4.gguf", "Q4_0")
    return folder, q8, q4


def output(generation: Generation) -> np.ndarray:
    with generation.images.get(index=0).file.open("rb") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def test_a_gguf_transformer_is_scanned_and_runs_a_job_with_its_familys_other_parts(
    flux_files, models_dir, api, tmp_path, monkeypatch
):
    folder, q8, q4 = flux_files
    shutil.copytree(folder, models_dir / "fill")
    shutil.copy(q8, models_dir / q8.name)
    shutil.copy(q4, models_dir / q4.name)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    library_scan()
    rows = {m.name: m for m in LibraryModel.objects.checkpoints()}
    for name, quantization in (("fill-q8.gguf", "Q8_0"), ("fill-q4.gguf", "Q4_0")):
        row = rows[name]
        assert (row.family, row.inpainting, row.layout) == ("flux", True, "gguf")
        assert row.details["quantization"] == quantization
        held = sum(read_gguf(models_dir / name)[1].values())
        assert row.details["parts"] == {
            "denoiser": held,
            "text_encoders": 0,
            "other": 0,
            "fp8": False,  # already quantized: no fp8 plan
        }
    assert rows["fill-q4.gguf"].size_bytes < rows["fill-q8.gguf"].size_bytes
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["fill-q8.gguf"]["quantization"] == "Q8_0"
    assert listed["fill-q8.gguf"]["runnable"] is True  # with fill's text encoders and VAE
    needs = listed["fill-q8.gguf"]["memory_gb"]
    assert "fp8" not in needs  # already quantized
    # It runs with fill's text encoders and VAE: the plans count them.
    theirs = rows["fill"].details["parts"]
    held = rows["fill-q8.gguf"].details["parts"]["denoiser"]
    weights = held + theirs["text_encoders"] + theirs["other"]
    assert needs["gpu"] == round((weights + memory.DEFAULT_HEADROOM) / 1e9, 1)

    wait_until_served("fill-q8.gguf")
    response = post_img2img(
        api,
        image_png(),
        black_box_mask_png(),
        prompt="a red rose",
        engine="diffusers",
        model="fill-q8.gguf",
        num_inference_steps=1,
        seed=3,
        wait="false",
    )
    assert response.status_code == 202, response.content
    generation = wait_for_status(response.json()["id"], timeout=240)
    assert generation.status == "succeeded", generation.error
    assert generation.metadata["family"] == "flux"
    assert generation.metadata["memory_plan"] == "cpu"
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    untouched = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    assert untouched.any() and np.array_equal(output(generation)[untouched], original[untouched])
    assert not np.array_equal(output(generation)[~untouched], original[~untouched])
