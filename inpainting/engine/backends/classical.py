"""Object removal with no weights: PatchMatch by default, OpenCV Telea / Navier-Stokes."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..types import (
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    EngineError,
    ProgressCallback,
    ProgressEvent,
)

METHODS = ("patchmatch", "telea", "ns")
MODEL_NAMES = {"patchmatch": "patchmatch", "telea": "opencv-telea", "ns": "opencv-ns"}
PROMPT_NOTE = "The classical engine removes the masked content and ignores the prompt."


class ClassicalBackend:
    name = "classical"
    working_size = None  # works at the input's own resolution

    def __init__(self, method: str = "patchmatch", patch_size: int = 5) -> None:
        if method not in METHODS:
            raise EngineError(f"Unknown classical method {method!r}; choose one of {METHODS}.")
        self.method = method
        self.patch_size = patch_size

    def _fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if self.method == "patchmatch":
            from patchmatch import patch_match

            if not patch_match.patchmatch_available:
                raise EngineError("PatchMatch is not available on this machine.")
            return patch_match.inpaint(image, hole, patch_size=self.patch_size)
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, hole, 5, flag)

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        image = np.ascontiguousarray(np.asarray(call.image.convert("RGB")))
        hole = np.ascontiguousarray(np.asarray(call.hole), dtype=np.uint8)
        total = len(call.seeds)
        images = []
        for index, _seed in enumerate(call.seeds):
            if is_cancelled():
                raise Cancelled()
            filled = self._fill(image, hole)
            images.append(Image.fromarray(np.asarray(filled, dtype=np.uint8), "RGB"))
            progress(ProgressEvent(step=index + 1, total=total))
        return BackendOutput(
            images=images,
            model=MODEL_NAMES[self.method],
            metadata={"prompt_ignored": True, "note": PROMPT_NOTE},
        )
