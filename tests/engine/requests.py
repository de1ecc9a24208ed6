"""The small inpainting request the family tests share, and the exact-preservation check."""

from __future__ import annotations

import numpy as np

from inpainting.engine import InpaintRequest, MaskOptions, effective_mask
from tests.images import box_mask, gradient


def inpaint_request(**overrides) -> InpaintRequest:
    """A 120 x 80 gradient with a box to regenerate, "a red rose", 4 steps, seed 7."""
    values = dict(
        image=gradient(120, 80),
        mask=box_mask(120, 80, (40, 20, 80, 60), inpaint_white=False),
        prompt="a red rose",
        num_inference_steps=4,
        seed=7,
    )
    values.update(overrides)
    return InpaintRequest(**values)


def kept_exactly(result, req) -> bool:
    """Every pixel the effective mask keeps is the input's, byte for byte."""
    out = np.asarray(result.images[0])
    original = np.asarray(req.image)
    mask = effective_mask(req.mask, req.image.size, MaskOptions())
    return out.shape == original.shape and (out[mask == 0] == original[mask == 0]).all()
