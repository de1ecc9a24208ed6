"""Object removal with no weights: the hybrid fill by default (``infill``), or one method.

An outpaint's new area is extended by ``infill.extend`` under the default method.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from ..infill import FULL_SIZE_HOLE_PIXELS, FULL_SIZE_PIXELS, METHODS, extend, fill
from ..isolated import run_cancellable, warm
from ..types import BackendCall, CancelCheck, EngineError
from .fill import FillBackend

MODEL_NAMES = {
    "hybrid": "hybrid-patchmatch-poisson",
    "patchmatch": "patchmatch",
    "telea": "opencv-telea",
    "ns": "opencv-ns",
}
#: ``hybrid`` (the default) fills every hole at the photo's own resolution: a large one first
#: where it is small, then refined a scale at a time (``infill.coarse_to_fine``). The single
#: methods are given the crop shrunk by the runner to these limits (PatchMatch's time grows
#: with both), and their fill is refined up to full size by the runner (``multiscale.refine``).
WORKING_PIXELS = FULL_SIZE_PIXELS
WORKING_HOLE_PIXELS = FULL_SIZE_HOLE_PIXELS
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
    max_pixels = WORKING_PIXELS  # ...or, by a single method, shrunk when it, or its hole,
    max_hole_pixels = WORKING_HOLE_PIXELS  # has more pixels
    size_multiple = 1

    def __init__(self, method: str = "hybrid", patch_size: int = 5) -> None:
        if method not in METHODS:
            raise EngineError(f"Unknown classical method {method!r}; choose one of {METHODS}.")
        self.method = method
        self.model = MODEL_NAMES[method]
        self.patch_size = patch_size
        if method == "hybrid":  # it shrinks and refines a large hole itself, in the helper
            self.max_pixels = self.max_hole_pixels = None
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
