"""The shared behaviour around the backends: exact preservation, sizes, seeds, classical fill."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inpainting.engine import (
    Cancelled,
    EngineConfig,
    InpaintRequest,
    InvalidInput,
    MaskOptions,
    effective_mask,
    get_backend,
    resolve_seeds,
    run_inpaint,
)
from inpainting.engine.compose import composite, working_dimensions
from inpainting.engine.infill import METHODS
from inpainting.engine.types import BackendOutput
from tests.images import box_mask, gradient


class SolidBackend:
    """A backend that paints everything one colour, at an optional working size."""

    name = "solid"
    size_multiple = 8
    prefill = False
    supports_batch = False

    def __init__(self, working_size=None, colour=(255, 0, 255)):
        self.working_size = working_size
        self.colour = colour
        self.calls = []

    def inpaint(self, call, progress, is_cancelled):
        self.calls.append(call)
        return BackendOutput(
            images=[Image.new("RGB", call.image.size, self.colour) for _ in call.seeds],
            model="solid",
        )


def test_unmasked_pixels_are_byte_identical_and_masked_ones_generated():
    image = gradient(97, 61)  # odd sizes on purpose
    mask = box_mask(97, 61, (30, 20, 60, 40), inpaint_white=False)
    result = run_inpaint(InpaintRequest(image=image, mask=mask), SolidBackend(working_size=64))
    out = np.asarray(result.images[0])
    original = np.asarray(image)
    effective = effective_mask(mask, image.size, MaskOptions())
    assert out.shape == original.shape
    assert (out[effective == 0] == original[effective == 0]).all()
    assert (out[effective == 255] == (255, 0, 255)).all()
    partial = (effective > 0) & (effective < 255)
    assert partial.any()
    # Gray = blended: strictly between the original and the generated colour on green.
    assert (out[partial][:, 1] <= original[partial][:, 1]).all()


def test_backend_sees_the_working_resolution_and_the_result_comes_back_full_size():
    image = gradient(300, 200)
    mask = box_mask(300, 200, (100, 50, 200, 150), inpaint_white=False)
    backend = SolidBackend(working_size=64)
    result = run_inpaint(InpaintRequest(image=image, mask=mask), backend)
    width, height = backend.calls[0].image.size
    assert max(width, height) == 64 and width % 8 == 0 and height % 8 == 0
    assert backend.calls[0].hole.size == (width, height)
    assert result.images[0].size == (300, 200)
    assert (result.width, result.height) == (300, 200)


def test_working_dimensions_are_multiples_of_eight():
    assert working_dimensions(768, 512, 512) == (512, 344)
    assert working_dimensions(333, 1000, 512) == (168, 512)


def test_composite_integer_blend():
    original = np.full((1, 3, 3), 100, np.uint8)
    generated = np.full((1, 3, 3), 200, np.uint8)
    out = composite(original, generated, np.array([[0, 128, 255]], np.uint8))
    assert out[0, 0].tolist() == [100] * 3
    assert out[0, 1].tolist() == [150] * 3
    assert out[0, 2].tolist() == [200] * 3


def test_seeds_given_random_and_consecutive():
    assert resolve_seeds(10, 3) == [10, 11, 12]
    assert resolve_seeds(2**32 - 1, 2) == [2**32 - 1, 0]
    random_seeds = resolve_seeds(None, 2)
    assert random_seeds[1] == (random_seeds[0] + 1) % 2**32
    result = run_inpaint(
        InpaintRequest(
            image=gradient(),
            mask=box_mask(96, 64, (10, 10, 20, 20), inpaint_white=False),
            seed=None,
            samples=2,
        ),
        SolidBackend(),
    )
    assert len(result.images) == 2 and result.seeds[1] == result.seeds[0] + 1


def test_empty_mask_is_refused():
    mask = Image.new("L", (96, 64), 255)  # all white: nothing to inpaint on this polarity
    with pytest.raises(InvalidInput, match="selects no pixels"):
        run_inpaint(InpaintRequest(image=gradient(), mask=mask), SolidBackend())


def test_cancel_before_start():
    mask = box_mask(96, 64, (10, 10, 20, 20), inpaint_white=False)
    with pytest.raises(Cancelled):
        run_inpaint(
            InpaintRequest(image=gradient(), mask=mask), SolidBackend(), is_cancelled=lambda: True
        )


@pytest.mark.parametrize("method", METHODS)
def test_classical_backend_removes_an_object(method):
    """A red disc on a smooth gradient is masked; the fill matches the surroundings."""
    background = gradient(128, 96)
    image = background.copy()
    ImageDraw.Draw(image).ellipse((48, 32, 80, 64), fill=(255, 0, 0))
    mask = Image.new("L", image.size, 255)
    ImageDraw.Draw(mask).ellipse((44, 28, 84, 68), fill=0)
    config = EngineConfig(classical_method=method)
    result = run_inpaint(
        InpaintRequest(image=image, mask=mask, prompt="ignored"), get_backend("classical", config)
    )
    out = np.asarray(result.images[0]).astype(int)
    truth = np.asarray(background).astype(int)
    hole = effective_mask(mask, image.size, MaskOptions()) == 255
    red = (out[..., 0] > 200) & (out[..., 1] < 60)
    assert not red[hole].any(), "the red object is still there"
    error = np.abs(out[hole] - truth[hole]).mean()
    assert error < 25, f"fill differs from the background by {error:.1f} on average"
    assert result.metadata["prompt_ignored"] is True
    assert result.engine == "classical"
    assert (
        np.asarray(result.images[0])[~(effective_mask(mask, image.size, MaskOptions()) > 0)]
        == np.asarray(image)[~(effective_mask(mask, image.size, MaskOptions()) > 0)]
    ).all()
