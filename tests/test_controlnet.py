"""ControlNet inpainting (issue 17) through the API and the real worker: a tiny random inpaint
ControlNet changes the picture, conditioning_scale 0 gives the picture without it, the kept
pixels are the input's every time, and the library refuses what cannot work."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from django.conf import settings
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation
from inpainting.services.library import library_scan
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from tests.helpers import (
    black_box_mask_png,
    image_png,
    output_pixels,
    post_img2img,
    run_job,
    wait_for_status,
    wait_until_served,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def controlnet_folder(tiny_model, tmp_path_factory):
    return write_tiny_controlnet(tiny_model, tmp_path_factory.mktemp("cn") / "inpaint-cn")


@pytest.fixture
def library(tmp_path, models_dir, tiny_model, controlnet_folder, monkeypatch):
    """alpha (SD 1.5), the tiny inpaint ControlNet, and an SDXL ControlNet's folder."""
    shutil.copytree(tiny_model, models_dir / "alpha")
    root = settings.CONTROLNETS_DIR
    shutil.copytree(controlnet_folder, root / "inpaint-cn")
    xl = root / "xl-inpaint-cn"
    xl.mkdir()
    config = {"_class_name": "ControlNetModel", "addition_embed_type": "text_time"}
    (xl / "config.json").write_text(json.dumps(config))
    (xl / "diffusion_pytorch_model.safetensors").write_bytes(b"not read by the scan")
    (root / "control_v11p_sd15_inpaint.pth").write_bytes(b"a pickle")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    report = library_scan()
    assert report.default == "alpha"
    assert any(name == "controlnets/control_v11p_sd15_inpaint.pth" for name, _ in report.refused)
    wait_until_served("alpha")


def test_a_controlnet_steers_scale_0_does_not_and_kept_pixels_stay(api, library):
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    kept = effective_mask(mask, original.shape[1::-1], MaskOptions()) == 0
    plain = run_job(api)
    steered = run_job(api, controlnet='{"name": "inpaint-cn", "conditioning_scale": 1.0}')
    at_zero = run_job(api, controlnet='{"name": "inpaint-cn", "conditioning_scale": 0}')
    late = run_job(
        api,
        controlnet='{"name": "inpaint-cn", "guidance_start": 0.5, "guidance_end": 1.0}',
    )
    for generation in (plain, steered, at_zero, late):
        assert np.array_equal(output_pixels(generation)[kept], original[kept])
    assert not np.array_equal(output_pixels(steered), output_pixels(plain))
    assert np.array_equal(output_pixels(at_zero), output_pixels(plain))
    assert not np.array_equal(
        output_pixels(late), output_pixels(steered)
    )  # only half the steps steered
    detail = api.get(f"/api/generations/{steered.pk}/").json()
    assert detail["metadata"]["controlnet"] == {
        "name": "inpaint-cn",
        "conditioning_scale": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
    }
    rerun = api.post(f"/api/generations/{steered.pk}/rerun/").json()
    assert np.array_equal(
        output_pixels(wait_for_status(rerun["id"], timeout=120)), output_pixels(steered)
    )


def test_the_controlnets_listing_and_what_is_refused(api, library):
    listed = {c["name"]: c["family"] for c in api.get("/api/controlnets").json()["controlnets"]}
    assert listed == {"inpaint-cn": "sd15", "xl-inpaint-cn": "sdxl"}

    def refused(controlnet: str, **fields) -> str:
        fields = {"prompt": "a rose", "engine": "diffusers", "controlnet": controlnet, **fields}
        response = post_img2img(api, image_png(), black_box_mask_png(), **fields)
        assert response.status_code == 400, response.content
        return response.json()["message"]

    assert "Unknown ControlNet 'nope'; the ControlNets here are: inpaint-cn" in refused(
        '{"name": "nope"}'
    )
    assert "is for Stable Diffusion XL, and the model alpha is Stable Diffusion 1.5" in refused(
        '{"name": "xl-inpaint-cn"}'
    )
    assert "conditioning_scale must be between 0 and 2" in refused(
        '{"name": "inpaint-cn", "conditioning_scale": 3}'
    )
    assert "guidance_start < guidance_end" in refused(
        '{"name": "inpaint-cn", "guidance_start": 0.8, "guidance_end": 0.2}'
    )
    assert "controlnet applies to the diffusers engine" in refused(
        '{"name": "inpaint-cn"}', engine="classical"
    )
    assert not Generation.objects.exists()
