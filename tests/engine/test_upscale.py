"""The upscale engine (issue 41): the output size from a factor or a target, refused over the
limit before any pixel work; Lanczos; a model run over overlapping tiles, blended so the tiled
picture equals the untiled one away from the seams' blend, with progress per tile and a
cancel between tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inpainting.engine import Cancelled, InvalidInput, upscale

RNG = np.random.default_rng(7)


class TinyUpscaler(torch.nn.Module):
    """x2, as the super-resolution models end: a 3x3 convolution to 4 sub-pixels per channel,
    then a pixel shuffle (a receptive field of one pixel around each input pixel)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = torch.nn.PixelShuffle(2)

    def forward(self, x):
        return torch.sigmoid(self.shuffle(self.conv(x)))


def photo(width: int = 100, height: int = 70) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_the_output_size_from_a_factor_or_a_target():
    assert upscale.target_size((100, 70), factor=2) == (200, 140)
    assert upscale.target_size((100, 70), factor=1) == (100, 70)
    assert upscale.target_size((100, 70), width=300) == (300, 210)
    assert upscale.target_size((100, 70), width=300, height=100) == (300, 100)
    for bad in (0.5, 4.5, None):
        with pytest.raises(InvalidInput, match="between 1 and 4"):
            upscale.target_size((100, 70), factor=bad)
    with pytest.raises(InvalidInput, match="only enlarges"):
        upscale.target_size((100, 70), width=50)


def test_an_output_over_the_limit_is_refused():
    with pytest.raises(InvalidInput, match="2000x1000 pixels; the limit is 1000000 pixels"):
        upscale.check_targets([(2000, 1000)], 1_000_000, field="upscaling_resize")
    upscale.check_targets([(1000, 1000)], 1_000_000, field="upscaling_resize")
    with pytest.raises(InvalidInput, match="The 2 upscaled pictures would be 1200000 pixels"):
        upscale.check_targets([(1000, 600)] * 2, 1_000_000, field="imageList")


def test_lanczos_gives_the_exact_size():
    image = photo()
    out = upscale.upscale(image, (250, 175))
    assert out.size == (250, 175)
    want = image.resize((250, 175), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(out), np.asarray(want))
    nearest = upscale.upscale(image, (200, 140), method="nearest")
    assert np.array_equal(np.asarray(nearest)[::2, ::2], np.asarray(image))


def test_tiles_cover_the_picture_and_overlap():
    boxes = upscale.tile_boxes(100, 70, 32, 8)
    covered = np.zeros((70, 100), int)
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 <= 32 and y1 - y0 <= 32
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert upscale.tile_boxes(30, 20, 32, 8) == [(0, 0, 30, 20)]


def test_a_tiled_model_equals_the_untiled_one_away_from_the_seams():
    model, image = TinyUpscaler().eval(), photo()
    whole = np.asarray(upscale.run_tiled(model, image, 2, tile=200, overlap=8)).astype(int)
    seen = []
    tiled = upscale.run_tiled(
        model, image, 2, tile=32, overlap=8, on_tile=lambda done, total: seen.append((done, total))
    )
    tiled = np.asarray(tiled).astype(int)
    assert tiled.shape == whole.shape == (140, 200, 3)
    boxes = upscale.tile_boxes(100, 70, 32, 8)
    assert seen == [(i + 1, len(boxes)) for i in range(len(boxes))]  # progress per tile
    # The blend zones: the output pixels within the overlap of two tiles.
    count = np.zeros((140, 200), int)
    for x0, y0, x1, y1 in boxes:
        count[y0 * 2 : y1 * 2, x0 * 2 : x1 * 2] += 1
    blend = count > 1
    difference = np.abs(tiled - whole).max(axis=2)
    assert difference[~blend].max() <= 1
    # In the blend, a tile's own edge (where it lacks its neighbour's pixels) weighs little.
    assert difference[blend].mean() < 1.0 and difference.max() <= 8


def test_a_cancel_between_tiles_stops_the_work():
    done = []
    with pytest.raises(Cancelled):
        upscale.run_tiled(
            TinyUpscaler(),
            photo(),
            2,
            tile=32,
            overlap=8,
            on_tile=lambda n, total: done.append(n),
            cancelled=lambda: len(done) >= 3,
        )
    assert done == [1, 2, 3]


def test_a_model_of_another_scale_is_refused():
    with pytest.raises(InvalidInput, match="not a x4 upscaler"):
        upscale.run_tiled(TinyUpscaler(), photo(40, 30), 4)
