"""Filling holes with no model: PatchMatch (pypatchmatch) or OpenCV's Telea / Navier-Stokes."""

from __future__ import annotations

import cv2
import numpy as np

from .types import EngineError

METHODS = ("patchmatch", "telea", "ns")


def fill(
    image: np.ndarray, hole: np.ndarray, method: str = "patchmatch", patch_size: int = 5
) -> np.ndarray:
    """``image`` H x W x 3 uint8 with the ``hole`` (H x W, non-zero = fill) filled in."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    hole = np.ascontiguousarray(np.where(hole > 0, 255, 0), dtype=np.uint8)
    if method == "patchmatch":
        from patchmatch import patch_match

        if not patch_match.patchmatch_available:
            raise EngineError("PatchMatch is not available on this machine.")
        return np.asarray(patch_match.inpaint(image, hole, patch_size=patch_size), np.uint8)
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, hole, 5, flag)
    raise EngineError(f"Unknown fill method {method!r}; choose one of {METHODS}.")
