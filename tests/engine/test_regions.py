"""Only-masked inpainting and outpainting, around any backend."""

import numpy as np
import pytest

from inpainting.engine import (
    EngineConfig,
    InpaintRequest,
    InvalidInput,
    MaskOptions,
    Outpaint,
    effective_mask,
    get_backend,
    run_inpaint,
)
from inpainting.engine.runner import masked_region
from inpainting.testing.tiny_model import tiny_config
from tests.engine.test_runner import SolidBackend
from tests.images import box_mask, gradient


def big_request(**overrides):
    image = gradient(2048, 2048)
    mask = box_mask(2048, 2048, (1000, 900, 1099, 1049), inpaint_white=True)
    values = dict(image=image, mask=mask, mask_options=MaskOptions(mode="white_inpaints"))
    values.update(overrides)
    return InpaintRequest(**values)


def test_only_masked_calls_the_model_at_working_size_on_the_crop_and_keeps_the_rest():
    backend = SolidBackend(working_size=512)
    request = big_request(inpaint_area="masked", padding=32)
    result = run_inpaint(request, backend)
    call = backend.calls[0]
    width, height = call.image.size
    assert max(width, height) == 512 and width % 8 == 0 and height % 8 == 0
    x0, y0, x1, y1 = result.metadata["crop"]
    # The mask's box (100 x 150) plus 32 px each side, grown to the working aspect ratio.
    assert x0 <= 1000 - 32 and y0 <= 900 - 32 and x1 >= 1100 + 32 and y1 >= 1050 + 32
    assert (x1 - x0) * (y1 - y0) < 0.02 * 2048 * 2048
    assert abs((x1 - x0) / (y1 - y0) - width / height) < 0.02
    out = np.asarray(result.images[0])
    original = np.asarray(request.image)
    assert out.shape == original.shape
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (out[outside] == original[outside]).all()
    mask = effective_mask(request.mask, request.image.size, request.mask_options)
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] == (255, 0, 255)).all()


def test_auto_crops_small_masks_and_not_large_ones():
    backend = SolidBackend(working_size=512)
    assert run_inpaint(big_request(), backend).metadata["inpaint_area"] == "masked"
    large = box_mask(2048, 2048, (100, 100, 1900, 1900), inpaint_white=True)
    result = run_inpaint(big_request(mask=large), backend)
    assert result.metadata["inpaint_area"] == "whole"
    assert backend.calls[-1].image.size == (512, 512)


def test_whole_sends_the_whole_image():
    backend = SolidBackend(working_size=512)
    result = run_inpaint(big_request(inpaint_area="whole"), backend)
    assert result.metadata["inpaint_area"] == "whole" and "crop" not in result.metadata
    assert backend.calls[0].image.size == (512, 512)


def test_the_region_stays_inside_the_image():
    mask = np.zeros((300, 400), np.uint8)
    mask[0:10, 390:400] = 255  # a corner
    x0, y0, x1, y1 = masked_region(mask, 32, 512)
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 300


def test_bad_area_and_padding():
    with pytest.raises(InvalidInput, match="inpaint_area"):
        run_inpaint(big_request(inpaint_area="corner"), SolidBackend())
    with pytest.raises(InvalidInput, match="padding"):
        run_inpaint(big_request(padding=300, inpaint_area="masked"), SolidBackend())


def test_outpaint_per_side_keeps_the_original_region_identical_beyond_the_seam():
    image = gradient(120, 80)
    result = run_inpaint(
        InpaintRequest(image=image, mask=None, outpaint=Outpaint(left=40, right=20, top=10)),
        SolidBackend(working_size=64),
    )
    out = np.asarray(result.images[0])
    assert out.shape == (80 + 10, 120 + 40 + 20, 3)
    # The feather lies outside the new area: over the original's outer mask_blur = 4 px.
    assert (out[10 + 4 : 90, 40 + 4 : 160 - 4] == np.asarray(image)[4:, 4:-4]).all()
    assert (out[:, :40] == (255, 0, 255)).all()  # the whole new area is generated
    seam = out[50, 41]  # one pixel into the original: a blend of it and the result
    assert (seam != (255, 0, 255)).any() and (seam != np.asarray(image)[40, 1]).any()
    assert result.metadata["outpaint"] == {"left": 40, "top": 10, "right": 20, "bottom": 0}


@pytest.mark.parametrize(
    "anchor,origin", [("center", (40, 60)), ("top-left", (0, 0)), ("bottom-right", (80, 120))]
)
def test_outpaint_to_a_target_size_with_an_anchor(anchor, origin):
    image = gradient(120, 80)
    result = run_inpaint(
        InpaintRequest(
            image=image,
            mask=None,
            outpaint=Outpaint(width=200, height=200, anchor=anchor),
            mask_options=MaskOptions(blur=0),  # no seam: the placement alone
        ),
        SolidBackend(),
    )
    out = np.asarray(result.images[0])
    assert out.shape == (200, 200, 3)
    x, y = origin
    assert (out[y : y + 80, x : x + 120] == np.asarray(image)).all()


def test_outpaint_target_smaller_than_the_image_is_refused():
    with pytest.raises(InvalidInput, match="smaller than the image"):
        run_inpaint(
            InpaintRequest(
                image=gradient(120, 80), mask=None, outpaint=Outpaint(width=100, height=100)
            ),
            SolidBackend(),
        )


def test_classical_outpaint_continues_the_image():
    image = gradient(96, 64)
    result = run_inpaint(
        InpaintRequest(image=image, mask=None, outpaint=Outpaint(right=32)),
        get_backend("classical", EngineConfig()),
    )
    out = np.asarray(result.images[0]).astype(int)
    assert out.shape == (64, 128, 3)
    assert (out[:, : 96 - 4] == np.asarray(image)[:, :-4]).all()  # beyond the seam's feather
    # The gradient's last column continues into the new area (no black, no noise).
    assert np.abs(out[:, 100:] - out[:, 95:96]).mean() < 30


def test_mask_is_required_without_outpaint():
    with pytest.raises(InvalidInput, match="mask is required"):
        run_inpaint(InpaintRequest(image=gradient(), mask=None), SolidBackend())


def test_diffusers_only_masked_on_a_large_image(tiny_model):
    config = tiny_config(tiny_model)
    request = big_request(
        prompt="a rose", num_inference_steps=3, denoising_strength=1.0, inpaint_area="masked"
    )
    result = run_inpaint(request, get_backend("diffusers", config))
    out, original = np.asarray(result.images[0]), np.asarray(request.image)
    mask = effective_mask(request.mask, request.image.size, request.mask_options)
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.9
    assert max(result.metadata["working_size"]) == 64


def test_a_fills_crop_reaches_a_quarter_of_the_hole_beyond_it():
    """A fill copies from around the hole: its crop holds context in proportion to the hole
    (a 32 px band under a tall hole at the frame held only what it should not copy)."""
    mask = np.zeros((1000, 1000), np.uint8)
    mask[0:400, 500:600] = 255  # 400 px tall, at the top edge
    assert masked_region(mask, 32, None, context_share=0.25) == (400, 0, 700, 500)
    assert masked_region(mask, 32, None) == (468, 0, 632, 432)
