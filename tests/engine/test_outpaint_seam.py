"""Classical outpainting continues the photo across its old border, with no seam and no smear.

The coffee photo (scikit-image, 512 x 341) is outpainted 128 px on one side by the classical
engine exactly as ``POST /api/img2img`` runs it with ``outpaint={"<side>": 128}`` and every
other parameter at its default (seed fixed to 0); ``bench/outpaint_seam.py`` defines the two
measures and prints them for all four sides.
"""

import cv2
import numpy as np
import pytest
from skimage import data

from bench import outpaint_seam
from bench.classical_quality import load_photo
from inpainting.engine import InpaintRequest, Outpaint, run_inpaint
from inpainting.params import GenerationParams
from tests.engine.test_runner import SolidBackend
from tests.images import gradient

#: The step across the old border may be at most a quarter stronger than the photo's own steps
#: between neighbouring columns beside it: a step above that is a seam.
MAX_SEAM = 1.25
#: ... and not far weaker: a fill that is smooth along the old border draws a blurred line
#: there (the hybrid fill scored 0.24 to 0.31 on the four sides). The photo itself, cut 160 to
#: 300 px short of any side and measured the same way, never scores under 0.43.
MIN_SEAM = 0.4
#: The new strip keeps at least this share of the fine detail of the original beside the
#: border: the hybrid fill's streaks scored 0.50 (left) and 0.54 (top); the continued grain
#: 0.69 to 1.04 (the top strip is partly the dark background continued, which has little).
MIN_TEXTURE = 0.6


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_photo("coffee")


@pytest.mark.parametrize("side", outpaint_seam.SIDES)
def test_classical_outpaint_continues_the_photo_across_the_old_border(photo, side):
    result = outpaint_seam.outpaint(photo, side, outpaint_seam.PIXELS)
    before = outpaint_seam.to_the_right(photo, side)
    after = outpaint_seam.to_the_right(result, side)
    width = before.shape[1]
    assert after.shape == (before.shape[0], width + outpaint_seam.PIXELS, 3)
    # The original stays byte-identical beyond the feather over its outer mask_blur pixels.
    blur = GenerationParams().mask_blur
    assert (after[:, : width - blur] == before[:, : width - blur]).all()
    seam = outpaint_seam.seam_ratio(photo, result, side)
    texture = outpaint_seam.texture_ratio(photo, result, side)
    assert MIN_SEAM <= seam <= MAX_SEAM, (side, round(seam, 2))
    assert texture >= MIN_TEXTURE, (side, round(texture, 2))


def test_a_backend_that_fills_the_new_area_itself_gets_as_much_original_as_it_is_deep():
    """The only-masked crop of a 128 px outpaint keeps 128 px of the original beside the new
    area (``padding``, 32 px, alone would leave a fill from context a sliver to copy from)."""
    backend = SolidBackend()
    request = InpaintRequest(image=gradient(1024, 256), mask=None, outpaint=Outpaint(right=128))
    result = run_inpaint(request, backend)
    x0, _, x1, _ = result.metadata["crop"]
    assert x1 == 1024 + 128 and x0 <= 1024 - 128
    call = backend.calls[0]
    assert call.outpaint and call.image.width == x1 - x0


#: The eye of chelsea (scikit-image, 451 x 300) nearest the right border: its lid, iris and
#: pupil, 65 x 70 px.
EYE = (slice(100, 170), slice(285, 350))
#: The most a patch of the new strip may look like the eye (normalised cross-correlation, grey;
#: 1 = the same). Copied from the photo (the band as deep as the strip) it was 0.87; the
#: background continued scores 0.45.
MAX_EYE_LIKENESS = 0.6


def test_an_outpaint_repeats_no_distinct_feature_of_the_photo():
    """Issue 77, item 3: chelsea outpainted 256 px to the right had the cat's eye, brow and
    ear copied into the new strip, a second half face in the background. The strip continues
    the background at the border, and nothing in it matches the eye."""
    photo = data.chelsea()
    result = outpaint_seam.outpaint(photo, "right", 256)
    assert result.shape == (300, 451 + 256, 3)
    grey = lambda pixels: cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)  # noqa: E731
    strip = grey(result[:, 451 + GenerationParams().mask_blur :])
    likeness = float(cv2.matchTemplate(strip, grey(photo[EYE]), cv2.TM_CCOEFF_NORMED).max())
    print(f"\nchelsea + 256 px right: the strip's best match to the eye {likeness:.2f}")
    assert likeness < MAX_EYE_LIKENESS
