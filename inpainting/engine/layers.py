"""Layers (issue 80): a job's regions, each a mask with its own prompt, made into the regions a
model paints, as Krita AI Diffusion makes its regions:

- the layers are ordered from the bottom up: an upper layer's mask is subtracted from every
  layer below it (a pixel belongs to the uppermost layer that covers it);
- a layer left covering under ``MIN_SHARE`` of the picture is dropped, and a warning names it;
- a layer covering over ``MAX_SHARE`` of it is not a region: its prompt is the whole picture's
  (joined to the job's prompt), and a warning says so;
- the area regenerated is the layers' union, or the job's own mask; what of it no region covers
  (``rest``) is painted by the job's prompt;
- a region is painted with its own words followed by the job's.

A layered job runs in one call where the backend paints regions (``BackendCall.regions``:
the SD UNets' cross-attention, the FLUX families' joint attention, ``backends.regional``),
else one layer after another (``run_layers_in_turn``). Masks are arrays of the picture's size,
0 to 1 (a soft edge partly covers a pixel), read by the job's own mask rules (``layer_of``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import Image

from .masks import effective_mask, mask_file_of
from .prompts import parse_weights, split_loras
from .runner import Backend, prepare, run_prepared
from .types import (
    CancelCheck,
    InpaintRequest,
    InpaintResult,
    InvalidInput,
    Layer,
    MaskOptions,
    ProgressCallback,
    ProgressEvent,
    Region,
    never_cancelled,
    no_progress,
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
class Regions:
    """The layers as a model paints them: ``regions`` (bottom up, masks that do not overlap,
    each within ``area``), ``prompt`` (the whole picture's, a layer's joined where one covered
    nearly all), ``area`` (what the job regenerates: the regions' union, or the job's own mask)
    and the ``warnings`` of what changed."""

    regions: list[Layer]
    prompt: str
    area: np.ndarray
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def rest(self) -> np.ndarray:
        """What the job regenerates outside every region (0 to 1): painted by ``prompt``.
        Nothing when the area is the regions' union."""
        covered = sum((region.mask for region in self.regions), np.zeros_like(self.area))
        return np.clip(self.area - covered, 0.0, 1.0)

    def words(self, region: Layer) -> str:
        """What a region is painted with: its own prompt, then the whole picture's (Krita's
        regions add the root prompt to each: the scene's style and light reach every one)."""
        return ", ".join(p.strip() for p in (region.prompt, self.prompt) if p.strip())


def regions_of(layers: list[Layer], prompt: str, area: np.ndarray | None = None) -> Regions:
    """The regions ``layers`` (bottom up) paint with the job's ``prompt`` (see the module);
    ``area``: the job's own mask (0 to 1), the regions kept within it; None: the layers'
    union."""
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
    if area is not None and area.shape != shape:
        raise InvalidInput(
            f"The layers' masks are {shape[1]}x{shape[0]}; the mask is "
            f"{area.shape[1]}x{area.shape[0]}.",
            field="layers",
        )
    within = np.ones(shape, np.float32) if area is None else area.astype(np.float32)
    above = np.zeros(shape, np.float32)  # what the regions above cover (at most 1)
    kept: list[Layer] = []
    warnings: list[dict[str, str]] = []
    whole: list[str] = []
    for layer in reversed(layers):  # from the top down
        own = np.clip(layer.mask.astype(np.float32), 0.0, 1.0) * within * (1.0 - above)
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
    words = ", ".join(p.strip() for p in (prompt, *reversed(whole)) if p.strip())
    if area is None:  # every layer's pixels, a dropped one's too (painted by the prompt)
        area = np.clip(sum(np.clip(layer.mask, 0, 1) for layer in layers), 0, 1)
    if not area.any():
        raise InvalidInput("The layers' masks select no pixels to regenerate.", field="layers")
    return Regions(kept, words, area.astype(np.float32), warnings)


def _said(layer: Layer, what: str) -> dict[str, str]:
    return {"field": "layers", "message": f"Layer {layer.name!r} {what}."}


def _share(mask: Image.Image, size: tuple[int, int], options: MaskOptions) -> np.ndarray:
    """A mask file read as the job's mask is (its polarity, alpha, invert; scaled to the
    picture), 0 to 1, without feather or grow: those apply to the area as a whole."""
    values = effective_mask(mask, size, replace(options, blur=0, grow=0))
    return values.astype(np.float32) / 255.0


def layer_of(
    name: str, prompt: str, mask: Image.Image, size: tuple[int, int], options: MaskOptions
) -> Layer:
    """A layer of a job from its mask file, read by the job's mask rules (``options``)."""
    return Layer(name, _share(mask, size, options), prompt)


def layer_area(request: InpaintRequest) -> np.ndarray | None:
    """The area a layered request regenerates, as its own mask says (0 to 1); None when it
    has none (the layers' union is)."""
    if request.mask is None:
        return None
    return _share(request.mask, request.image.size, request.mask_options)


def regions_for(request: InpaintRequest) -> Regions:
    """The regions a layered request paints (``regions_of`` on its layers, its prompt and its
    own mask), once what a layered job may not ask is refused: the check before queueing and
    the run read the job the same way."""
    if request.outpaint is not None or request.resize is not None:
        raise InvalidInput(
            "Layers are drawn on the picture as it is: a layered job takes no outpaint or resize.",
            field="layers",
        )
    if request.samples != 1:
        raise InvalidInput("A layered job makes one picture: samples must be 1.", field="samples")
    for layer in request.layers:
        words, tagged = split_loras(layer.prompt)
        if tagged:
            raise InvalidInput(
                f"Layer {layer.name!r}: a LoRA applies to the whole job; put its tag in the "
                "job's prompt.",
                field="layers",
            )
        parse_weights(words, field="layers")
    return regions_of(list(request.layers), request.prompt, layer_area(request))


def run_layered(
    request: InpaintRequest,
    backend: Backend,
    progress: ProgressCallback,
    is_cancelled: CancelCheck,
) -> InpaintResult:
    """A layered job (``request.layers``; ``jobs.run_inpaint`` sends it here): in one call
    where the backend paints regions (``Backend.regions_in_one_call``) and no ControlNet,
    IP-Adapter or reference picture steers it, else one layer after another. Its metadata's
    ``layered`` says which way ran, the regions painted and what normalising changed."""
    regions = regions_for(request)
    # A ControlNet's, an IP-Adapter's or a reference picture's attention is not split by
    # region: with one, in turn.
    steered = request.controlnet or request.ip_adapter or request.reference_images
    if backend.regions_in_one_call and not steered:
        return _run_in_one_call(request, regions, backend, progress, is_cancelled)
    return run_layers_in_turn(request, regions, backend, progress, is_cancelled)


def _run_in_one_call(
    request: InpaintRequest,
    regions: Regions,
    backend: Backend,
    progress: ProgressCallback,
    is_cancelled: CancelCheck,
) -> InpaintResult:
    """The area regenerated in one backend call, each region's prompt steering its pixels:
    the regions brought to the call's frame as the mask is (the crop, then the working
    size)."""
    whole = replace(
        request,
        mask=mask_file_of(regions.area, request.mask_options),
        prompt=regions.prompt,
        layers=(),
    )
    prepared = prepare(whole, backend)
    size = prepared.call.image.size
    placed = []
    for region in regions.regions:
        values = np.rint(region.mask * 255).astype(np.uint8)
        if prepared.box is not None:
            x0, y0, x1, y1 = prepared.box
            values = values[y0:y1, x0:x1]
        if values.shape[::-1] != size:
            shrinking = size[0] < values.shape[1]
            filter_ = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            values = cv2.resize(values, size, interpolation=filter_)
        placed.append(Region(regions.words(region), Image.fromarray(values, "L")))
    prepared = replace(prepared, call=replace(prepared.call, regions=tuple(placed)))
    return _said_how(run_prepared(prepared, backend, progress, is_cancelled), "one call", regions)


def _said_how(ran: InpaintResult, how: str, regions: Regions) -> InpaintResult:
    """``ran``, its metadata's ``layered`` saying how the layers ran and which were regions."""
    layered = {"ran": how, "regions": [region.name for region in regions.regions]}
    return replace(ran, metadata={**ran.metadata, "layered": layered})


def run_layers_in_turn(
    request: InpaintRequest,
    regions: Regions,
    backend: Backend,
    progress: ProgressCallback = no_progress,
    is_cancelled: CancelCheck = never_cancelled,
) -> InpaintResult:
    """A layered job on an engine with no one-call path (the fill engines, and the families
    whose attention takes no regions): what no region covers of the area first, with the
    job's prompt, then each region in turn, bottom up, on the picture the one below it left,
    with its words (``Regions.words``), its mask as given (its edges feathered as the request
    says). One picture; its metadata says how the layers ran."""
    rest = regions.rest
    passes = [(rest, regions.prompt)] if np.rint(rest * 255).any() else []
    passes += [(region.mask, regions.words(region)) for region in regions.regions]
    picture, ran, seconds = request.image, None, 0.0
    for index, (mask, words) in enumerate(passes):
        mask_file = mask_file_of(mask, request.mask_options)
        step = replace(request, image=picture, mask=mask_file, prompt=words, layers=())

        def told(event: ProgressEvent, index: int = index) -> None:
            progress(ProgressEvent(index * event.total + event.step, len(passes) * event.total))

        ran = run_prepared(prepare(step, backend), backend, told, is_cancelled)
        picture, seconds = ran.images[0], seconds + ran.inference_seconds
    return _said_how(replace(ran, images=[picture], inference_seconds=seconds), "in turn", regions)
