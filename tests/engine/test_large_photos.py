"""Large photos: the classical engine fills a large hole at the photo's own resolution (coarse,
then refined a scale at a time: ``infill.coarse_to_fine``, ``multiscale.refine``) in seconds,
without touching a pixel outside the effective mask.

``bench/large_photos.py`` defines the three timed cases (a 2048 px photo with a 12.5 % hole at
the frame, the whole cup of a 2048 px coffee photo, a 4000 x 3000 photo with a 10 % hole) and
prints their figures for docs/engines.md.
"""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from bench import large_photos
from bench.classical_quality import mask_file, scores
from inpainting.engine import EngineConfig, effective_mask, get_backend, run_inpaint
from inpainting.engine.infill import FULL_SIZE_HOLE_PIXELS, fill, full_size_scale
from inpainting.engine.multiscale import refine, touched
from inpainting.params import GenerationParams

#: The test allows twice the bench's time targets: it runs beside the rest of the suite on a
#: 2-core machine, and a regression to full-size PatchMatch (19 s and more here) still fails it.
TIME_ALLOWANCE = 2.0


@pytest.mark.serial  # measures time
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
    assert row["working_size"] == row["crop_size"]  # filled at the photo's own resolution
    assert row["worker_peak_mb"] + row["helper_peak_mb"] < large_photos.MEMORY_TARGET_MB[case]
    assert row["engine_seconds"] <= TIME_ALLOWANCE * large_photos.CASES[case][3]
    low, high = large_photos.TEXTURE_TARGET
    assert low <= row["texture"] <= high  # the photo's grain, not a slab


def laplacian_energy(image: np.ndarray, where: np.ndarray) -> float:
    """The mean |Laplacian| of the grey picture over ``where``: how much fine detail it has."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))[where].mean())


def test_an_18_percent_hole_in_a_3000_px_photo_has_the_photos_own_detail():
    """A lawn (scikit-image's grass photo, tiled) of 3000 x 2000 with an ellipse hole of 18 %
    of it, filled as the helper fills it: inside the hole, away from its edge, the fine detail
    (mean |Laplacian| at the photo's own size) is at least 0.6 of that in the 24 px ring around
    it (1.1 here; 0.72 for the fill before, made small and enlarged with the grain, through
    the runner). The small fill enlarged alone has 0.03 of it: the figure tells a smear from
    grain."""
    grass = np.repeat(data.grass()[..., None], 3, axis=2)
    image = np.tile(grass, (4, 6, 1))[:2000, :3000]
    hole = np.zeros((2000, 3000), np.uint8)
    cv2.ellipse(hole, (1500, 1000), (735, 468), 0, 0, 360, 1, -1)
    hole = hole > 0
    assert 0.175 <= hole.mean() <= 0.185
    kernel = np.ones((3, 3), np.uint8)
    inside = cv2.erode(hole.astype(np.uint8), kernel, iterations=8) > 0
    ring = (cv2.dilate(hole.astype(np.uint8), kernel, iterations=24) > 0) & ~hole
    result = fill(image, hole, seed=0)
    assert (result[~hole] == image[~hole]).all()
    ratio = laplacian_energy(result, inside) / laplacian_energy(image, ring)
    assert ratio >= 0.6, ratio

    scale = full_size_scale(hole)
    size = (round(3000 * scale), round(2000 * scale))
    small = fill(cv2.resize(image, size, interpolation=cv2.INTER_AREA), touched(hole, size[::-1]))
    smear = np.where(
        hole[..., None], cv2.resize(small, (3000, 2000), interpolation=cv2.INTER_CUBIC), image
    )
    assert laplacian_energy(smear, inside) / laplacian_energy(image, ring) < 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_a_boundary_between_two_surfaces_runs_on_through_the_hole(seed):
    """Grass above a straight line, gravel below (scikit-image's photos, the grass tinted
    green), a 600 px disc over the line: each texture comes back on its own side (over the
    whole middle of the hole, 25 px and more above the line every column is grass, below it
    none is), and the line, column by column, lies within 4 px of where it was. Measured here
    for seeds 0-7: within 2 or 3 px (with PatchMatch's patches 5 wide at the small scale, 17 to
    20 px off over half the hole on 5 of the 8: ``infill.COARSE_PATCH_SIZE``)."""
    grass = np.tile(data.grass(), (3, 3))[:1200, :1200]
    gravel = np.tile(data.gravel(), (3, 3))[:1200, :1200]
    grey = np.where(np.arange(1200)[:, None] < 600, grass, gravel).astype(np.uint8)
    image = np.stack([grey, grey, (grey * 0.6).astype(np.uint8)], axis=2)
    image[:600, :, 1] = np.clip(image[:600, :, 1].astype(int) + 60, 0, 255)
    hole = np.zeros((1200, 1200), np.uint8)
    cv2.circle(hole, (600, 600), 300, 1, -1)
    result = fill(image, hole > 0, seed=seed)
    green = cv2.GaussianBlur(result[..., 1].astype(np.float32) - result[..., 0], (0, 0), 4) > 30
    middle = slice(400, 800)
    assert green[330:575, middle].all(axis=1).mean() > 0.98  # grass above
    assert not green[625:870, middle].any()  # no grass below
    ends = 300 + np.argmin(green[300:900, middle], axis=0)  # the first non-grass row
    assert np.abs(ends - 600).max() <= 4, np.abs(ends - 600).max()


def test_a_fill_made_small_comes_back_with_the_grain_of_the_photo_not_a_slab():
    """Wood-like grain (diagonal stripes of a 5 px period and noise) with a bright object in
    a 300 x 300 hole, filled at a third of the size (as the runner does for a single method):
    enlarged alone the fill is a smooth slab (under half the grain around it);
    ``multiscale.refine`` brings the grain back from the photo's own pixels (within 0.8-1.2 of
    it) and nothing of the object's."""
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:600, 0:600]
    grain = 128 + 40 * np.sin((xs + ys) * 2 * np.pi / 5) + rng.normal(0, 12, (600, 600))
    image = np.repeat(np.clip(grain, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    hole = np.zeros((600, 600), bool)
    hole[150:450, 150:450] = True
    image[hole] = 255  # the object being removed
    small_image = cv2.resize(image, (200, 200), interpolation=cv2.INTER_AREA)
    small_hole = touched(hole, (200, 200))
    small_fill = fill(small_image, small_hole, "patchmatch", seed=0)
    slab = cv2.resize(small_fill, (600, 600), interpolation=cv2.INTER_CUBIC)
    slab = np.where(hole[..., None], slab, image)
    assert scores(image, slab, hole)["texture"] < 0.5
    result = refine(image, hole, small_image, small_fill, seed=0)
    assert 0.8 <= scores(image, result, hole)["texture"] <= 1.2
    assert (result[~hole] == image[~hole]).all()
    assert result[hole].mean() < 160  # grain around 128, not the white object


def test_nothing_of_a_removed_object_comes_back_from_a_large_hole():
    """A white disc on a grey 1500 x 1000 photo, masked to 1 px inside its edge (its rim lies
    in the feather band, as an object's antialiased edge does): the fill starts at about a
    quarter of the size. Every pixel the result is blended over at full size is filled, so the
    result is the grey fill blended over the photo by the effective mask: nothing of the disc
    comes back, and the fill ran at the crop's own size."""
    image = np.full((1000, 1500, 3), 90, np.uint8)
    cv2.circle(image, (750, 500), 251, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    hole = np.zeros((1000, 1500), np.uint8)
    cv2.circle(hole, (750, 500), 250, 255, -1, lineType=cv2.LINE_AA)
    hole = hole > 0
    assert np.count_nonzero(hole) > 16 * FULL_SIZE_HOLE_PIXELS  # so it starts small
    params = GenerationParams(seed=0)
    mask = mask_file(hole, params)
    request = params.with_defaults().to_request(image=Image.fromarray(image), mask=mask)
    result = run_inpaint(request, get_backend("classical", EngineConfig()))
    crop = result.metadata["crop"]
    assert result.metadata["working_size"] == [crop[2] - crop[0], crop[3] - crop[1]]
    output = np.asarray(result.images[0].convert("RGB")).astype(int)
    weights = effective_mask(mask, (1500, 1000), params.mask_options).astype(int)[..., None]
    expected = (image.astype(int) * (255 - weights) + 90 * weights + 127) // 255
    assert np.abs(output - expected).max() <= 2


def test_a_fill_does_not_start_so_small_that_nothing_is_left_to_fill_from():
    """Specks over a whole 400 x 300 picture (a noisy selection: about 60 % of its pixels,
    none far from another): shrunk to its hole limit every small pixel would be masked, and
    the fill would have nothing to fill from ("The mask covers the whole image"). It is
    filled at its own size instead, and fills."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    hole = rng.random((300, 400)) < 0.6
    assert np.count_nonzero(hole) > 4 * FULL_SIZE_HOLE_PIXELS
    assert full_size_scale(hole) == 1.0
    params = GenerationParams(seed=0, mask_blur=0)
    request = params.with_defaults().to_request(
        image=Image.fromarray(image), mask=mask_file(hole, params)
    )
    result = run_inpaint(request, get_backend("classical", EngineConfig()))
    assert result.metadata["working_size"] == [400, 300]
