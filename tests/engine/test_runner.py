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
from inpainting.engine.images import resize_to
from inpainting.engine.infill import METHODS
from inpainting.engine.types import MASKED_CONTENT, RESIZE_MODES, BackendOutput, Resize
from tests.images import box_mask, gradient


class SolidBackend:
    """A backend that paints everything one colour, at an optional working size."""

    name = "solid"
    size_multiple = 8
    prefill = False
    supports_batch = False
    uses_masked_content = False
    regions_in_one_call = False
    edits = False
    max_pixels = max_hole_pixels = None
    context_share = 0.0

    def __init__(self, working_size=None, colour=(255, 0, 255), working_sizes=()):
        self.working_size = working_size
        self.working_sizes = working_sizes
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


def test_resize_brings_image_and_mask_to_the_size_alike():
    """AUTOMATIC1111's resize modes: the output is the size asked for; the mask moves with the
    picture, so what it kept stays kept (the resized input's pixels, exactly)."""
    image = gradient(120, 60)
    mask = box_mask(120, 60, (50, 20, 70, 40), inpaint_white=True)
    for mode in RESIZE_MODES:
        resize = Resize(80, 80, mode)
        request = InpaintRequest(
            image=image,
            mask=mask,
            resize=resize,
            mask_options=MaskOptions("white_inpaints", blur=0),
        )
        result = run_inpaint(request, SolidBackend())
        out = np.asarray(result.images[0])
        expected = np.asarray(resize_to(image, resize))
        kept = np.asarray(resize_to(mask, resize).convert("L")) == 0
        assert out.shape == (80, 80, 3) and (result.width, result.height) == (80, 80)
        assert np.array_equal(out[kept], expected[kept]), mode
        assert (out[~kept] != expected[~kept]).any(), mode


def test_resize_modes_place_the_picture_as_a1111_does():
    """stretch fills the target; crop scales to cover and cuts the long side's ends; fill
    scales to fit and repeats the edge pixels into the bands."""
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 9, 99), fill=(255, 0, 0))  # a red left edge
    stretched = np.asarray(resize_to(image, Resize(100, 100, "stretch")))
    red = (stretched[:, 0, 0] > 230) & (stretched[:, 0, 2] < 25)
    assert red.all()  # squeezed, still at the edge
    cropped = np.asarray(resize_to(image, Resize(100, 100, "crop")))
    assert (cropped == (0, 0, 255)).all()  # the red strip was cut away with the left end
    filled = np.asarray(resize_to(image, Resize(100, 100, "fill")))
    assert (filled[:25] == filled[25]).all() and (filled[75:] == filled[74]).all()
    assert (filled[50, :4, 0] > 230).all() and (filled[50, :4, 2] < 25).all()  # all the width
    with pytest.raises(InvalidInput):
        resize_to(image, Resize(10, 10, "zoom"))


def test_masked_content_is_what_the_diffusion_model_starts_from():
    """original: the picture; fill: colours from around the hole; nothing: flat grey; noise:
    the picture, at denoising strength 1 (from noise alone). Engines that fill the hole
    themselves (no pre-fill) are handed the picture as it is."""
    image = gradient(64, 64)
    mask = box_mask(64, 64, (16, 16, 48, 48), inpaint_white=True)
    hole = np.asarray(mask) > 0
    seen = {}
    for content in MASKED_CONTENT:
        backend = SolidBackend()
        backend.uses_masked_content = True
        request = InpaintRequest(
            image=image, mask=mask, masked_content=content, denoising_strength=0.6,
            mask_options=MaskOptions("white_inpaints", blur=0), inpaint_area="whole",
        )  # fmt: skip
        run_inpaint(request, backend)
        call = backend.calls[0]
        seen[content] = (np.asarray(call.image), call.denoising_strength)
    original = np.asarray(image)
    assert np.array_equal(seen["original"][0], original) and seen["original"][1] == 0.6
    assert np.array_equal(seen["noise"][0], original) and seen["noise"][1] == 1.0
    assert (seen["nothing"][0][hole] == 127).all() and seen["nothing"][1] == 0.6
    filled = seen["fill"][0]
    assert np.array_equal(filled[~hole], original[~hole])
    assert not np.array_equal(filled[hole], original[hole])
    # The fill continues the gradient from around the hole (flat grey would be 35 levels off).
    error = np.abs(filled[hole].astype(int) - original[hole].astype(int)).mean()
    assert error < 15, error
    # Plain img2img (a hole over everything): "fill" has nothing around it, the picture stays.
    whole = Image.new("L", (64, 64), 255)
    backend = SolidBackend()
    backend.uses_masked_content = True
    options = MaskOptions("white_inpaints", blur=0)
    run_inpaint(InpaintRequest(image=image, mask=whole, masked_content="fill",
                               mask_options=options), backend)  # fmt: skip
    assert np.array_equal(np.asarray(backend.calls[0].image), original)
    removal = SolidBackend()  # a classical or LaMa fill sees the picture as it is
    run_inpaint(InpaintRequest(image=image, mask=mask, masked_content="nothing"), removal)
    assert np.array_equal(np.asarray(removal.calls[0].image), original)
    with pytest.raises(InvalidInput):
        run_inpaint(InpaintRequest(image=image, mask=mask, masked_content="zeros"), SolidBackend())


def test_the_alpha_rules_of_each_api():
    """transparent (every native surface): transparent pixels regenerate; opaque
    (AUTOMATIC1111): strokes on a clear layer regenerate, alpha above 128 fully; required
    (OpenAI): only the alpha counts, and a mask without alpha is refused."""
    mask = Image.new("RGBA", (32, 32), (255, 255, 255, 255))  # opaque white
    mask.paste((0, 0, 0, 0), (8, 8, 24, 24))  # a clear square
    hole = np.zeros((32, 32), bool)
    hole[8:24, 8:24] = True

    def regenerated(alpha, mode="white_inpaints"):
        return effective_mask(mask, (32, 32), MaskOptions(mode, blur=0, alpha=alpha)) == 255

    assert np.array_equal(regenerated("transparent"), hole)
    assert np.array_equal(regenerated("required"), hole)
    assert np.array_equal(regenerated("opaque"), ~hole)
    assert np.array_equal(regenerated("opaque", "black_inpaints"), ~hole)  # colour is moot
    faint = Image.new("LA", (32, 32), (255, 100))  # alpha 100: below A1111's 128
    faint.paste((255, 200), (0, 0, 16, 32))
    values = effective_mask(faint, (32, 32), MaskOptions("white_inpaints", blur=0, alpha="opaque"))
    assert (values[:, :16] == 255).all() and (values[:, 16:] == 0).all()
    with pytest.raises(InvalidInput, match="mask image missing alpha channel"):
        effective_mask(Image.new("L", (32, 32), 255), (32, 32), MaskOptions(alpha="required"))


def test_a_resize_checks_the_mask_against_the_image_as_sent():
    image = gradient(96, 64)
    request = InpaintRequest(
        image=image, mask=Image.new("L", (64, 64), 255), resize=Resize(32, 32, "crop"),
        mask_options=MaskOptions("white_inpaints", exact_size=True),
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="size mismatch: the image is 96x64, the mask 64x64"):
        run_inpaint(request, SolidBackend())
    request.mask_options = MaskOptions("white_inpaints")
    with pytest.raises(InvalidInput, match="aspect ratios differ"):
        run_inpaint(request, SolidBackend())
    request.mask = box_mask(48, 32, (10, 10, 20, 20), inpaint_white=True)  # half size: scaled
    assert run_inpaint(request, SolidBackend()).images[0].size == (32, 32)
