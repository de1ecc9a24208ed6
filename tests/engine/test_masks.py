"""Every mask rule, on generated masks: the effective mask is computed in one place."""

import numpy as np
import pytest
from PIL import Image

from inpainting.engine import InvalidInput, MaskOptions, effective_mask
from tests.images import box_mask

SIZE = (64, 48)
BOX = (16, 12, 39, 31)  # inclusive corners, 24 x 20 pixels


def inside(values: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = BOX
    return values[y0 : y1 + 1, x0 : x1 + 1]


def no_blur(**kwargs) -> MaskOptions:
    return MaskOptions(blur=0, **kwargs)


def test_black_inpaints_polarity():
    mask = box_mask(*SIZE, BOX, inpaint_white=False)  # white background, black box
    values = effective_mask(mask, SIZE, no_blur(mode="black_inpaints"))
    assert (inside(values) == 255).all()
    assert values.sum() == 255 * 24 * 20


def test_white_inpaints_polarity():
    mask = box_mask(*SIZE, BOX, inpaint_white=True)
    values = effective_mask(mask, SIZE, no_blur(mode="white_inpaints"))
    assert (inside(values) == 255).all()
    assert values.sum() == 255 * 24 * 20


def test_same_file_means_opposite_areas_under_the_two_polarities():
    mask = box_mask(*SIZE, BOX, inpaint_white=True)
    white = effective_mask(mask, SIZE, no_blur(mode="white_inpaints"))
    black = effective_mask(mask, SIZE, no_blur(mode="black_inpaints"))
    assert (white.astype(int) + black.astype(int) == 255).all()


def test_invert_swaps_the_areas():
    mask = box_mask(*SIZE, BOX, inpaint_white=False)
    values = effective_mask(mask, SIZE, no_blur(invert=True))
    assert (inside(values) == 0).all()
    assert (values == 255).sum() == SIZE[0] * SIZE[1] - 24 * 20


def test_rgba_alpha_transparent_means_inpaint_whatever_the_colour():
    rgba = np.zeros((SIZE[1], SIZE[0], 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: by colour nothing would be inpainted
    rgba[..., 3] = 255
    x0, y0, x1, y1 = BOX
    rgba[y0 : y1 + 1, x0 : x1 + 1, 3] = 0
    mask = Image.fromarray(rgba, "RGBA")
    for mode in ("black_inpaints", "white_inpaints"):
        values = effective_mask(mask, SIZE, no_blur(mode=mode))
        assert (inside(values) == 255).all()
        assert values.sum() == 255 * 24 * 20


def test_opaque_rgba_uses_colour():
    mask = box_mask(*SIZE, BOX, inpaint_white=False).convert("RGBA")
    values = effective_mask(mask, SIZE, no_blur())
    assert (inside(values) == 255).all()


def test_gray_is_partial():
    mask = Image.new("L", SIZE, 255)
    x0, y0, x1, y1 = BOX
    mask.paste(64, (x0, y0, x1 + 1, y1 + 1))
    values = effective_mask(mask, SIZE, no_blur(mode="black_inpaints"))
    assert (inside(values) == 255 - 64).all()
    values = effective_mask(mask, SIZE, no_blur(mode="white_inpaints"))
    assert (inside(values) == 64).all()


def test_grow_and_shrink_move_the_edge_by_that_many_pixels():
    mask = box_mask(*SIZE, BOX, inpaint_white=False)
    grown = effective_mask(mask, SIZE, no_blur(grow=3))
    shrunk = effective_mask(mask, SIZE, no_blur(grow=-3))
    x0, y0, x1, y1 = BOX
    row = y0 + 10
    assert grown[row, x0 - 3] == 255 and grown[row, x0 - 4] == 0
    assert grown[row, x1 + 3] == 255 and grown[row, x1 + 4] == 0
    assert shrunk[row, x0 + 3] == 255 and shrunk[row, x0 + 2] == 0
    assert shrunk[row, x1 - 3] == 255 and shrunk[row, x1 - 2] == 0


def test_the_feather_lies_outside_the_mask():
    """SPEC section 3: every selected pixel is fully regenerated; the weight fades outside the
    mask, to about half at mask_blur / 2 pixels and to exactly 0 at mask_blur."""
    size, box = (96, 96), (30, 30, 65, 65)
    mask = box_mask(*size, box, inpaint_white=False)
    values = effective_mask(mask, size, MaskOptions(blur=4))
    x0, y0, x1, y1 = box
    row = (y0 + y1) // 2
    assert (values[y0 : y1 + 1, x0 : x1 + 1] == 255).all()  # nothing of the inside blends back
    profile = [int(values[row, x0 - d]) for d in range(1, 6)]
    assert profile == sorted(profile, reverse=True) and 200 < profile[0] < 255
    assert 100 < values[row, x0 - 2] < 156  # about half at mask_blur / 2 pixels out
    assert values[row, x0 - 4] == 0 and values[row, x1 + 4] == 0
    outside = np.ones(values.shape, bool)
    outside[y0 - 3 : y1 + 4, x0 - 3 : x1 + 4] = False
    assert (values[outside] == 0).all()  # beyond the feather: exactly untouched


def test_an_antialiased_rim_is_regenerated_with_its_stroke():
    """A drawn stroke's antialiased edge pixels are outside its solid core: they take the
    core's feather, not their own faint value, so the object's edge does not blend back."""
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 20:44] = 255
    mask[19, 20:44] = 60  # a one-pixel antialiased rim
    values = effective_mask(Image.fromarray(mask), (64, 64), MaskOptions(mode="white_inpaints"))
    assert (values[19, 22:42] > 200).all()


def test_gray_keeps_blending_and_fades_out_from_its_own_value():
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 128
    values = effective_mask(Image.fromarray(mask), (64, 64), MaskOptions(mode="white_inpaints"))
    assert (values[16:48, 16:48] == 128).all()
    assert 0 < values[32, 15] < 128 and values[32, 16 - 4] == 0


def test_mask_with_same_aspect_is_scaled_to_the_image():
    small = box_mask(32, 24, (8, 6, 19, 15), inpaint_white=False)
    values = effective_mask(small, SIZE, no_blur())
    assert values.shape == (SIZE[1], SIZE[0])
    assert values[12 + 10, 16 + 12] == 255
    assert values[2, 2] == 0


def test_aspect_mismatch_is_refused_with_a_clear_message():
    wrong = Image.new("L", (64, 64), 0)
    with pytest.raises(InvalidInput, match="aspect ratios differ"):
        effective_mask(wrong, SIZE, no_blur())


def test_aspect_within_one_percent_is_accepted():
    near = Image.new("L", (1000, 752), 0)  # 1.3298 vs 1.3333: 0.27 % off
    assert effective_mask(near, (1000, 750), no_blur()).shape == (750, 1000)


def test_palette_and_16_bit_masks():
    palette = box_mask(*SIZE, BOX, inpaint_white=False).convert("P")
    assert (inside(effective_mask(palette, SIZE, no_blur())) == 255).all()
    sixteen = Image.fromarray(
        np.asarray(box_mask(*SIZE, BOX, inpaint_white=False), np.uint16) * 257
    )
    assert sixteen.mode.startswith("I")
    assert (inside(effective_mask(sixteen, SIZE, no_blur())) == 255).all()
