"""Object removal with no weights: the hybrid fill by default (``infill``), or one method.

An outpaint's new area is extended by ``infill.extend`` under the default method.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from ..infill import METHODS, extend, fill
from ..isolated import run_cancellable, warm
from ..types import BackendCall, CancelCheck, EngineError
from .fill import FillBackend

MODEL_NAMES = {
    "hybrid": "hybrid-patchmatch-poisson",
    "patchmatch": "patchmatch",
    "telea": "opencv-telea",
    "ns": "opencv-ns",
}
#: A crop (the hole and its context) of more pixels than WORKING_PIXELS, or whose hole has more
#: than WORKING_HOLE_PIXELS, is filled at the scale where it has no more, and the fill brought
#: back to full size with the photo's own grain (``infill.enlarge``, in the runner).
#: PatchMatch's time grows with both: about 35 us a hole pixel and 1 us a crop pixel on this
#: 2-core machine (a 12 % hole in a 2048 px photo took 33 s at full size; at 60,000 hole
#: pixels, without the grain, 5.8 s; at 30,000 with it 3.5 s). Holes up to about 175 x 175
#: px are filled at full resolution.
WORKING_PIXELS = 1_000_000
WORKING_HOLE_PIXELS = 30000
#: Pixels of at least this effective-mask weight are filled; lighter ones are the boundary.
FILL_WEIGHT = 128
PROMPT_NOTE = "The classical engine removes the masked content and ignores the prompt."


def holes(call: BackendCall) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels to fill and the mask's own core (what it selects fully).

    A fill reads its boundary from the pixels around the hole. Every pixel the mask selects,
    and the inner half of the feather band outside it (weight 128 and more, where a removed
    object's antialiased edge lies), is filled; the band's outer half is the boundary, so the
    fill meets the image there and the blend over the band shows no seam.
    """
    if call.weights is None:
        return np.asarray(call.hole), None
    weights = np.asarray(call.weights)
    return np.where(weights >= FILL_WEIGHT, 255, 0).astype(np.uint8), weights == 255


class ClassicalBackend(FillBackend):
    prompt_note = PROMPT_NOTE
    name = "classical"
    working_size = None  # a crop is filled at its own size...
    max_pixels = WORKING_PIXELS  # ...or shrunk when it, or its hole, has more pixels
    max_hole_pixels = WORKING_HOLE_PIXELS
    size_multiple = 1

    def __init__(self, method: str = "hybrid", patch_size: int = 5) -> None:
        if method not in METHODS:
            raise EngineError(f"Unknown classical method {method!r}; choose one of {METHODS}.")
        self.method = method
        self.model = MODEL_NAMES[method]
        self.patch_size = patch_size
        warm()  # the fill helper process starts now, not on the first job

    def fills(self, call: BackendCall, is_cancelled: CancelCheck) -> Iterator[Image.Image]:
        image = np.asarray(call.image.convert("RGB"))
        hole, core = holes(call)
        for seed in call.seeds:
            # In a child process: a cancel ends the fill at once, not when its C code returns.
            if call.outpaint and self.method == "hybrid":
                filled = run_cancellable(
                    extend, image, hole, self.patch_size, seed=seed, is_cancelled=is_cancelled
                )
            else:
                filled = run_cancellable(
                    fill,
                    image,
                    hole,
                    self.method,
                    self.patch_size,
                    seed=seed,
                    core=core,
                    is_cancelled=is_cancelled,
                )
            yield Image.fromarray(filled, "RGB")
