"""Diffusers' Qwen-Image-Edit pipelines bring each picture they read to 1 MP (1024 x 1024 px,
written into each pipeline's module) whatever size the call asks for, and the inpaint pipeline
generates at that size too; Bria FIBO 2.0's brings its other pictures to the area of its
``default_sample_size`` (128 latents a side: 1 MP). The backend runs them at the square of its
working size instead: the same 1 MP at the family's working size (1024), and the area of
``INPAINT_WORKING_SIZE``'s square where a deployment sets it (a smaller card; the tests' tiny
models at 64 px)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..families import Family

#: The area the pipelines' modules write in (``VAE_IMAGE_SIZE`` of the Plus pipeline too).
PIPELINE_AREA = 1024 * 1024
#: One call at a time runs a pipeline of such a module (a worker runs one job at a time): a
#: second thread waits instead of reading another call's area.
_LOCK = threading.RLock()


def working_area(family: Family, size: int) -> int:
    """The area ``family``'s pipelines run at for a working size: its square where they fix
    one (``Family.fixed_picture_area``), else the pipelines' own."""
    return size * size if family.fixed_picture_area else PIPELINE_AREA


@contextmanager
def picture_area(pipeline: Any, area: int) -> Iterator[None]:
    """While it lasts, ``pipeline``'s module (or its ``default_sample_size``) brings pictures
    to ``area`` pixels, not 1 MP; a pipeline that fixes no area runs as it is."""
    module = sys.modules[type(pipeline).__module__]
    calculate = getattr(module, "calculate_dimensions", None)
    if calculate is None:
        with _sample_size(pipeline, area):
            yield
        return

    def at_area(target_area: int, ratio: float):
        return calculate(area if target_area == PIPELINE_AREA else target_area, ratio)

    with _LOCK:
        try:
            if area != PIPELINE_AREA:
                module.calculate_dimensions = at_area
            yield
        finally:
            module.calculate_dimensions = calculate


@contextmanager
def _sample_size(pipeline: Any, area: int) -> Iterator[None]:
    """While it lasts, ``pipeline``'s ``default_sample_size`` (latents a side) is the one of
    ``area`` pixels (FIBO 2.0's), where it has one and ``area`` is not 1 MP."""
    own = getattr(pipeline, "default_sample_size", None)
    if own is None or area == PIPELINE_AREA:
        yield
        return
    with _LOCK:
        try:
            pipeline.default_sample_size = round(area**0.5) // pipeline.vae_scale_factor
            yield
        finally:
            pipeline.default_sample_size = own
