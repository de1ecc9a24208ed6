"""The inpaint ControlNet in the engine, for both families (issue 17): it steers the masked
area, conditioning_scale 0 is exactly no ControlNet, and the kept pixels are the input's."""

from __future__ import annotations

import numpy as np
import pytest

from inpainting.engine import (
    ControlNetUse,
    InpaintRequest,
    MaskOptions,
    effective_mask,
    get_backend,
    run_inpaint,
)
from inpainting.engine.backends.adapters import control_image
from inpainting.engine.probe import probe_controlnet
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from inpainting.testing.tiny_model import tiny_config, write_tiny_sdxl_inpaint_model
from tests.images import box_mask, gradient

MASK = box_mask(96, 64, (32, 20, 63, 43), inpaint_white=False)


@pytest.fixture(scope="module")
def pipelines(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet")
    xl = write_tiny_sdxl_inpaint_model(root / "xl")
    return {
        "sd15": (tiny_model, write_tiny_controlnet(tiny_model, root / "sd15-cn")),
        "sdxl": (xl, write_tiny_controlnet(xl, root / "sdxl-cn")),
    }


def request(controlnet=None) -> InpaintRequest:
    return InpaintRequest(
        image=gradient(96, 64),
        mask=MASK,
        prompt="a red rose",
        num_inference_steps=4,
        seed=3,
        controlnet=controlnet,
    )


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_the_controlnet_steers_and_scale_0_is_none(pipelines, family):
    model, controlnet = pipelines[family]
    assert probe_controlnet(controlnet) == family
    backend = get_backend("diffusers", tiny_config(model))
    plain = np.asarray(run_inpaint(request(), backend).images[0])
    steered = np.asarray(run_inpaint(request(ControlNetUse(str(controlnet))), backend).images[0])
    zero = ControlNetUse(str(controlnet), conditioning_scale=0.0)
    at_zero = np.asarray(run_inpaint(request(zero), backend).images[0])
    kept = effective_mask(MASK, (96, 64), MaskOptions()) == 0
    original = np.asarray(gradient(96, 64).convert("RGB"))
    for picture in (plain, steered, at_zero):
        assert np.array_equal(picture[kept], original[kept])
    assert not np.array_equal(steered, plain)
    assert np.array_equal(at_zero, plain)


def test_the_control_image_marks_the_pixels_to_regenerate_with_minus_one():
    image = gradient(8, 4)
    hole = box_mask(8, 4, (2, 1, 3, 2), inpaint_white=True)
    tensor = control_image(image, hole).numpy()
    assert tensor.shape == (1, 3, 4, 8)
    assert (tensor[0, :, 1:3, 2:4] == -1).all()
    rest = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255
    assert np.allclose(tensor[0, :, 0, :], rest[:, 0, :])
