"""Diffusers' Qwen-Image-Edit pipelines bring each picture they read to 1 MP (1024 x 1024 px,
written into each pipeline's module) whatever size the call asks for, and the inpaint pipeline
generates at that size too. The backend runs them at the square of its working size instead:
the same 1 MP at the family's working size (1024), and ``INPAINT_WORKING_SIZE`` honoured where
a deployment sets it (a smaller card; the tests' tiny models at 64 px)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The area the pipelines' modules write in.
PIPELINE_AREA = 1024 * 1024
#: The module-level names a pipeline reads its area from at each call.
_AREA_NAMES = ("VAE_IMAGE_SIZE",)
#: One call at a time changes a module's area (a worker runs one job at a time; a second
#: thread waits instead of reading another call's area).
_LOCK = threading.Lock()


@contextmanager
def picture_area(pipeline: Any, area: int) -> Iterator[None]:
    """While it lasts, ``pipeline``'s module brings pictures to ``area`` pixels, not 1 MP."""
    module = sys.modules[type(pipeline).__module__]
    calculate = getattr(module, "calculate_dimensions", None)
    if calculate is None or area == PIPELINE_AREA:
        yield
        return

    def at_area(target_area: int, ratio: float):
        return calculate(area if target_area == PIPELINE_AREA else target_area, ratio)

    with _LOCK:
        saved = {name: getattr(module, name) for name in _AREA_NAMES if hasattr(module, name)}
        module.calculate_dimensions = at_area
        for name in saved:
            setattr(module, name, area)
        try:
            yield
        finally:
            module.calculate_dimensions = calculate
            for name, value in saved.items():
                setattr(module, name, value)
