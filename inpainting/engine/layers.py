"""Layers (issue 80): a job's regions, each a mask with its own prompt, made into the regions a
model paints, as Krita AI Diffusion makes its regions:

- the layers are ordered from the bottom up: an upper layer's mask is subtracted from every
  layer below it (a pixel belongs to the uppermost layer that covers it);
- a layer left covering under ``MIN_SHARE`` of the picture is dropped, and a warning names it;
- a layer covering over ``MAX_SHARE`` of it is not a region: its prompt is the whole picture's
  (joined to the job's prompt), and a warning says so;
- what no layer covers (``rest``) is painted by the job's prompt.

Masks are arrays of the picture's size, 0 to 1 (a soft edge partly covers a pixel); plain
numpy, no model: what every engine, the API and the studio read."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from .runner import Backend, run_inpaint
from .types import (
    CancelCheck,
    InpaintRequest,
    InpaintResult,
    InvalidInput,
    ProgressCallback,
    ProgressEvent,
)

#: The most layers a job takes: each is a mask of the picture's size in memory and, on the
#: families that run them in one call, its prompt's tokens in every attention.
MAX_LAYERS = 8
#: A layer left covering less of the picture than this (after the layers above it) is
#: dropped: a few pixels steer nothing, and cost a prompt.
MIN_SHARE = 0.02
#: A layer covering more than this is the whole picture's prompt rather than a region.
MAX_SHARE = 0.9


@dataclass(frozen=True)
class Layer:
    """A layer as a job gives it: its name (for messages), its mask and its prompt."""

    name: str
    mask: np.ndarray
    prompt: str


@dataclass(frozen=True)
class Regions:
    """The layers as a model paints them: ``regions`` (bottom up, masks that do not overlap),
    ``prompt`` (the whole picture's, a layer's joined where one covered nearly all), ``rest``
    (what no region covers, painted by ``prompt``) and the ``warnings`` of what changed."""

    regions: list[Layer]
    prompt: str
    rest: np.ndarray
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def union(self) -> np.ndarray:
        """What the regions cover together (0 to 1): the area a layered job regenerates when
        it names no mask of its own."""
        return 1.0 - self.rest


def regions_of(layers: list[Layer], prompt: str) -> Regions:
    """The regions ``layers`` (bottom up) paint with the job's ``prompt`` (see the module)."""
    if len(layers) > MAX_LAYERS:
        raise InvalidInput(
            f"At most {MAX_LAYERS} layers a job; this one has {len(layers)}.", field="layers"
        )
    if not layers:
        raise InvalidInput("A layered job needs at least one layer.", field="layers")
    shape = layers[0].mask.shape
    for layer in layers:
        if layer.mask.shape != shape:
            raise InvalidInput(
                f"Layer {layer.name!r}'s mask is {layer.mask.shape[1]}x{layer.mask.shape[0]}; "
                f"the others' are {shape[1]}x{shape[0]}.",
                field="layers",
            )
    above = np.zeros(shape, np.float32)  # what the regions above cover (at most 1)
    kept: list[Layer] = []
    warnings: list[dict[str, str]] = []
    whole: list[str] = []
    for layer in reversed(layers):  # from the top down
        own = np.clip(layer.mask.astype(np.float32), 0.0, 1.0) * (1.0 - above)
        share = float(own.mean())
        if share > MAX_SHARE:
            whole.append(layer.prompt)
            warnings.append(
                _said(
                    layer, f"covers {share:.0%} of the picture: its prompt is the whole picture's"
                )
            )
        elif share < MIN_SHARE:
            warnings.append(
                _said(
                    layer,
                    f"covers {share:.1%} of the picture (under "
                    f"{MIN_SHARE:.0%}, after the layers above it): it was left out",
                )
            )
            continue
        else:
            kept.append(Layer(layer.name, own, layer.prompt))
        if share <= MAX_SHARE:  # a region: the layers below keep what it leaves
            above = above + own
    kept.reverse()
    covered = np.zeros(shape, np.float32)
    for region in kept:
        covered = covered + region.mask
    words = ", ".join(p.strip() for p in (prompt, *reversed(whole)) if p.strip())
    return Regions(kept, words, np.clip(1.0 - covered, 0.0, 1.0), warnings)


def _said(layer: Layer, what: str) -> dict[str, str]:
    return {"field": "layers", "message": f"Layer {layer.name!r} {what}."}


def run_layers_in_turn(
    request: InpaintRequest,
    regions: Regions,
    backend: Backend,
    *,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> InpaintResult:
    """A layered job on an engine with no one-call path (the fill engines, and the families
    whose attention takes no regions): each region repainted in turn, bottom up, on the
    picture the one below it left, with its own prompt (the job's where it has none), its
    mask as given (its edges feathered as the request says). One picture; its metadata says
    how the layers ran."""
    if request.samples != 1:
        raise InvalidInput("A layered job makes one picture: samples must be 1.", field="samples")
    picture, ran, seconds = request.image, None, 0.0
    count = len(regions.regions)
    for index, region in enumerate(regions.regions):
        regenerated = np.rint((1.0 - region.mask) * 255).astype(np.uint8)  # black: regenerated
        step = replace(
            request,
            image=picture,
            mask=Image.fromarray(regenerated, "L"),
            prompt=region.prompt.strip() or regions.prompt,
            mask_options=replace(request.mask_options, mode="black_inpaints", invert=False),
        )

        def told(event: ProgressEvent, index: int = index) -> None:
            if progress is not None:
                progress(ProgressEvent(index * event.total + event.step, count * event.total))

        ran = run_inpaint(step, backend, progress=told, is_cancelled=is_cancelled)
        picture, seconds = ran.images[0], seconds + ran.inference_seconds
    layers = {"ran": "in turn", "regions": [region.name for region in regions.regions]}
    return replace(
        ran,
        images=[picture],
        inference_seconds=seconds,
        metadata={**ran.metadata, "layers": layers},
    )
