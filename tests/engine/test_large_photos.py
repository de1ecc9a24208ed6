"""Large photos: the classical engine fills where the hole is, at the scale the hole needs,
and brings the fill back at full size without touching a pixel outside the effective mask.

``bench/large_photos.py`` defines the two cases (a 2048 px photo with a 12.5 % hole at the
frame, a 4000 x 3000 photo with a 5 % hole) and prints their figures for docs/engines.md.
"""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from bench import large_photos
from bench.classical_quality import mask_file
from inpainting.engine import EngineConfig, effective_mask, get_backend, run_inpaint
from inpainting.engine.backends.classical import WORKING_HOLE_PIXELS
from inpainting.params import GenerationParams

#: The test allows twice the bench's time targets: it runs beside the rest of the suite on a
#: 2-core machine, and a regression to full-size filling (19 s and more here) still fails it.
TIME_ALLOWANCE = 2.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", large_photos.CASES)
def test_a_large_photo_is_filled_in_seconds_in_under_a_gigabyte(case):
    answer = subprocess.run(
        [sys.executable, large_photos.__file__, "--case", case],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(answer.stdout.strip().splitlines()[-1])
    print(row)
    assert row["outside_unchanged"]
    width, height = row["working_size"]
    assert width * height < row["size"][0] * row["size"][1] / 4  # filled at a reduced scale
    assert row["worker_peak_mb"] + row["helper_peak_mb"] < large_photos.MEMORY_TARGET_MB
    assert row["engine_seconds"] <= TIME_ALLOWANCE * large_photos.CASES[case][3]


def test_nothing_of_a_removed_object_comes_back_when_the_fill_is_shrunk():
    """A white disc on a grey 3000 x 2000 photo, masked to 1 px inside its edge (its rim lies
    in the feather band, as an object's antialiased edge does): the fill runs at about a third
    of the size. Every pixel the result is blended over at full size was filled at the working
    size too, so the result is the grey fill blended over the photo by the effective mask, as
    at full size: nothing of the disc comes back from an unfilled working pixel."""
    image = np.full((2000, 3000, 3), 90, np.uint8)
    cv2.circle(image, (1500, 1000), 451, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    hole = np.zeros((2000, 3000), np.uint8)
    cv2.circle(hole, (1500, 1000), 450, 255, -1, lineType=cv2.LINE_AA)
    hole = hole > 0
    assert np.count_nonzero(hole) > 4 * WORKING_HOLE_PIXELS  # so it is shrunk
    params = GenerationParams(seed=0)
    mask = mask_file(hole, params)
    request = params.with_defaults().to_request(image=Image.fromarray(image), mask=mask)
    result = run_inpaint(request, get_backend("classical", EngineConfig()))
    width, height = result.metadata["working_size"]
    crop = result.metadata["crop"]
    assert width < (crop[2] - crop[0]) / 2 and height < (crop[3] - crop[1]) / 2
    output = np.asarray(result.images[0].convert("RGB")).astype(int)
    weights = effective_mask(mask, (3000, 2000), params.mask_options).astype(int)[..., None]
    expected = (image.astype(int) * (255 - weights) + 90 * weights + 127) // 255
    assert np.abs(output - expected).max() <= 2
