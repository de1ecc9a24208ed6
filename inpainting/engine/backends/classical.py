"""Object removal with no weights: the hybrid fill by default (``infill``), or one method."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..infill import METHODS, fill
from ..types import (
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    EngineError,
    ProgressCallback,
    ProgressEvent,
)

MODEL_NAMES = {
    "hybrid": "hybrid-patchmatch-poisson",
    "patchmatch": "patchmatch",
    "telea": "opencv-telea",
    "ns": "opencv-ns",
}
PROMPT_NOTE = "The classical engine removes the masked content and ignores the prompt."


class ClassicalBackend:
    name = "classical"
    working_size = None  # works at the input's own resolution
    prefill = False  # it fills the new area of an outpaint itself
    supports_batch = False  # a fill is per image; jobs run one by one

    def __init__(self, method: str = "hybrid", patch_size: int = 5) -> None:
        if method not in METHODS:
            raise EngineError(f"Unknown classical method {method!r}; choose one of {METHODS}.")
        self.method = method
        self.patch_size = patch_size

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        image = np.asarray(call.image.convert("RGB"))
        hole = np.asarray(call.hole)
        total = len(call.seeds)
        images = []
        for index, seed in enumerate(call.seeds):
            if is_cancelled():
                raise Cancelled()
            filled = fill(image, hole, self.method, self.patch_size, seed=seed)
            images.append(Image.fromarray(filled, "RGB"))
            progress(ProgressEvent(step=index + 1, total=total))
        return BackendOutput(
            images=images,
            model=MODEL_NAMES[self.method],
            metadata={"prompt_ignored": True, "note": PROMPT_NOTE},
        )

    def inpaint_batch(self, calls, progresses, cancel_checks) -> list[BackendOutput]:
        """One by one (``supports_batch`` is False, so the runner never asks)."""
        return [
            self.inpaint(call, progress, cancelled)
            for call, progress, cancelled in zip(calls, progresses, cancel_checks, strict=True)
        ]
