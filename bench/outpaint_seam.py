"""Classical outpainting on a real photo: does the picture continue across its old border?

    .venv/bin/python bench/outpaint_seam.py --out docs/outpaint

scikit-image's coffee photo (``classical_quality.load_photo``: 512 px long side) is outpainted
128 px on each side in turn by the classical engine exactly as ``POST /api/img2img`` runs it
with ``outpaint={"<side>": 128}`` and every other parameter at its default (seed fixed to 0).
For each side it prints:

- seam ratio: the mean |difference| between the first new and the last original row or column
  (RGB, over the whole border) over the image's own mean |difference| between neighbouring
  rows or columns among the original's 17 nearest the border. 1 is seamless; far above 1 is
  a step at the old border, far below 1 a smeared line along it;
- texture ratio: the new strip's mean |difference| between neighbouring pixels along the
  outward direction (grey, 4 px clear of the seam) over the same in the original's 32 rows or
  columns nearest the border. Far under 1 is a smear (streaks running outward), about 1
  is texture that continues;
- seconds.

It writes ``coffee.png`` to ``--out``: the photo padded on the right (the new area
checkered) beside the result, both cropped to the right part of the canvas.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.classical_quality import load_photo  # noqa: E402
from bench.removals import strip  # noqa: E402
from inpainting.engine import EngineConfig, get_backend, run_inpaint  # noqa: E402
from inpainting.params import GenerationParams  # noqa: E402

SIDES = ("right", "top", "left", "bottom")
PIXELS = 128
#: Neighbouring pairs of the original's rows or columns the seam is compared with.
SEAM_BAND = 16
#: Rows or columns of the original the new strip's texture is compared with.
TEXTURE_BAND = 32
#: The new strip's texture is measured this far from the old border (past the feather).
SEAM_CLEARANCE = 4
#: Quarter turns (``np.rot90``) that bring each side to the right.
TURNS = {"right": 0, "top": -1, "left": 2, "bottom": 1}


def outpaint(image: np.ndarray, side: str, pixels: int = PIXELS, seed: int = 0) -> np.ndarray:
    """The classical engine as a worker runs ``POST /api/img2img`` with ``outpaint={side:
    pixels}``, no mask and the defaults otherwise (the seed fixed, so a run repeats)."""
    params = GenerationParams(seed=seed, outpaint={side: pixels})
    request = params.with_defaults().to_request(image=Image.fromarray(image), mask=None)
    result = run_inpaint(request, get_backend("classical", EngineConfig()))
    return np.asarray(result.images[0].convert("RGB"))


def to_the_right(pixels: np.ndarray, side: str) -> np.ndarray:
    """``pixels`` turned so that ``side`` is on the right (the outward direction is +x)."""
    return np.rot90(pixels, TURNS[side]).astype(np.float64)


def seam_ratio(original: np.ndarray, result: np.ndarray, side: str) -> float:
    """The step across the old border over the image's own steps beside it (1 = seamless)."""
    before, after = to_the_right(original, side), to_the_right(result, side)
    border = before.shape[1]  # the first new column of ``after``
    seam = np.abs(after[:, border] - after[:, border - 1]).mean()
    own = np.abs(np.diff(before[:, border - SEAM_BAND - 1 :], axis=1)).mean()
    return float(seam / own)


def grey(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float64)


def texture_ratio(original: np.ndarray, result: np.ndarray, side: str) -> float:
    """The new strip's detail along the outward direction over the original's beside the
    border (about 1 = the texture continues, far under 1 = a smear)."""
    before, after = grey(to_the_right(original, side)), grey(to_the_right(result, side))
    border = before.shape[1]
    strip_detail = np.abs(np.diff(after[:, border + SEAM_CLEARANCE :], axis=1)).mean()
    own = np.abs(np.diff(before[:, border - TEXTURE_BAND :], axis=1)).mean()
    return float(strip_detail / own)


def padded(image: np.ndarray, pixels: int, cell: int = 8) -> Image.Image:
    """``image`` with ``pixels`` of checkerboard on the right: the area outpainting adds."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:pixels]
    checker = np.where(((y // cell + x // cell) % 2)[..., None] == 0, 200, 240)
    return Image.fromarray(np.concatenate([image, np.repeat(checker, 3, 2)], 1).astype(np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photo", default="coffee")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    original = load_photo(args.photo)
    print(f"{args.photo}, {original.shape[1]}x{original.shape[0]}, {PIXELS} px per side:")
    print("| side | seam ratio | texture ratio | seconds |\n|---|---|---|---|")
    for side in SIDES:
        started = time.perf_counter()
        result = outpaint(original, side)
        seconds = time.perf_counter() - started
        seam, texture = seam_ratio(original, result, side), texture_ratio(original, result, side)
        print(f"| {side} | {seam:.2f} | {texture:.2f} | {seconds:.2f} |")
        if side == "right":
            width = original.shape[1]
            crop = (width - 2 * PIXELS, 0, width + PIXELS, original.shape[0])
            panels = {
                f"input, {PIXELS} px added on the right": padded(original, PIXELS),
                "classical outpaint (defaults, seed 0)": Image.fromarray(result),
            }
            strip(panels, crop).save(args.out / f"{args.photo}.png", optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
