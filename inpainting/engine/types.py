"""The engine's boundary: plain dataclasses in and out, and the protocols passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

MaskMode = Literal["black_inpaints", "white_inpaints"]
InpaintArea = Literal["auto", "masked", "whole"]

MAX_SEED = 2**32 - 1
#: A fill's crop (the classical engine's and LaMa's) reaches a quarter of the hole's longer side
#: beyond it, and at least the request's padding: a fill copies texture and colour from around
#: the hole, and a hole at the frame has only the sides the frame leaves (a 32 px band under a
#: tall hole at the top held only an orange suit). Half gave PatchMatch more to copy from that
#: does not belong (a ghost of a face).
FILL_CONTEXT_SHARE = 0.25


class ClientError(Exception):
    """The one family of client mistakes, from the engine up: the message, the field at fault
    (named where the mistake is found) and the status it is answered with (400; also the 503
    of a request no live worker can run). ``inpainting.errors`` adds the upload's and the
    URL's kinds; the API's exception handler turns any of them into the one error shape, so
    no caller translates one error class into another."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        operator: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        #: Seconds after which the same request may succeed (a 429 or 503): ``Retry-After``.
        self.retry_after = retry_after
        #: What the server's staff can do about it (which file to copy where, which command
        #: installs what): added to the message for staff only (``for_reader``).
        self.operator = operator

    def for_reader(self, *, staff: bool) -> str:
        """The message as its reader gets it: an ordinary user or API client the short one
        (what they can do), staff the operator's details too."""
        return f"{self.message} {self.operator}" if staff and self.operator else self.message


class EngineError(Exception):
    """A job failed for a reason worth showing to the user as it is."""


class InvalidInput(ClientError, EngineError):
    """The request itself is wrong: a client mistake, a 400 before queueing (and a failed job
    if it is only found when the job runs); ``field`` names the request field at fault when
    the engine knows it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field=field)


class Cancelled(Exception):
    """Raised between steps when the cancel check says so."""


@dataclass(frozen=True)
class MaskOptions:
    """How a mask file becomes the effective mask (see ``masks.effective_mask``)."""

    mode: MaskMode = "black_inpaints"
    invert: bool = False
    blur: int = 4
    grow: int = 0
    #: Erase mode's growth of the mask, after ``grow`` (``parameters`` ``dilate_pixels``).
    dilate: int = 0
    #: Refuse a mask of another size instead of scaling it (APIs that promise a 400 there).
    exact_size: bool = False
    #: Binary masks: values above this regenerate fully, the rest not at all (None = gray blends).
    threshold: int | None = None
    #: What a mask's alpha channel means (``ALPHA_RULES``): "transparent" (transparent pixels
    #: regenerate, when there are any), "opaque" (AUTOMATIC1111: opaque pixels regenerate,
    #: alpha above 128 fully, when there are transparent ones), "required" (OpenAI: only the
    #: alpha counts, transparent = regenerate; a mask without alpha is refused).
    alpha: str = "transparent"


ALPHA_RULES = ("transparent", "opaque", "required")

ANCHORS = (
    "center",
    "top",
    "bottom",
    "left",
    "right",
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
)


#: How an image of another aspect ratio is brought to a requested size (AUTOMATIC1111's
#: resize modes): stretched to it, scaled to cover it and cropped, or scaled to fit inside it
#: with the edges stretched into the bands left over.
RESIZE_MODES = ("stretch", "crop", "fill")
#: What a diffusion model starts the masked area from (AUTOMATIC1111's "masked content"): the
#: picture under the mask, a fill from the pixels around it, noise alone (as denoising
#: strength 1), or flat mid-grey.
MASKED_CONTENT = ("original", "fill", "noise", "nothing")


@dataclass(frozen=True)
class Resize:
    """Bring the input (and its mask, the same way) to ``width`` x ``height`` first: the
    output is that size."""

    width: int
    height: int
    mode: str = "stretch"

    def describe(self) -> str:
        return f"{self.width}x{self.height} ({self.mode})"


@dataclass(frozen=True)
class Outpaint:
    """Extend the canvas: pixels per side, or a target size with the original anchored."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    width: int | None = None
    height: int | None = None
    anchor: str = "center"

    def describe(self) -> str:
        """In words: "right 256 px, top 128 px", or "to width 1024 px, anchored top-left"."""
        if self.width is None and self.height is None:
            names = ("left", "right", "top", "bottom")
            return ", ".join(f"{n} {getattr(self, n)} px" for n in names if getattr(self, n)) or "-"
        size = [
            f"{name} {value} px"
            for name, value in (("width", self.width), ("height", self.height))
            if value
        ]
        return f"to {' and '.join(size)}, anchored {self.anchor}"

    def sides(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) pixels to add around a ``width`` x ``height`` image."""
        if self.width is None and self.height is None:
            return self.left, self.top, self.right, self.bottom
        target_w = self.width or width
        target_h = self.height or height
        if target_w < width or target_h < height:
            raise InvalidInput(
                f"The outpaint target {target_w}x{target_h} is smaller than the image "
                f"({width}x{height}).",
                field="outpaint",
            )
        extra_w, extra_h = target_w - width, target_h - height
        if self.anchor not in ANCHORS:
            raise InvalidInput(
                f"Unknown outpaint anchor {self.anchor!r}; choose one of {ANCHORS}.",
                field="outpaint",
            )
        left = 0 if "left" in self.anchor else extra_w if "right" in self.anchor else extra_w // 2
        top = 0 if "top" in self.anchor else extra_h if "bottom" in self.anchor else extra_h // 2
        return left, top, extra_w - left, extra_h - top


@dataclass(frozen=True)
class ControlNetUse:
    """A ControlNet for the job: its diffusers folder, how strongly it conditions, and the
    part of the denoising it guides (fractions, 0 to 1). The inpaint ControlNet's control
    image is the input with the pixels to regenerate set to -1."""

    path: str
    conditioning_scale: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0


@dataclass(frozen=True)
class IpAdapterUse:
    """An IP-Adapter for the job: its folder (the adapter's ``weight_name`` and the CLIP image
    encoder in ``image_encoder/``, as h94/IP-Adapter publishes them) and how strongly the
    reference picture steers the picture (0: not at all)."""

    path: str
    weight_name: str
    scale: float = 1.0


@dataclass(frozen=True)
class EraserUse:
    """An erase adapter for the job (``probe.probe_eraser``): a LoRA of an edit model that
    removes what a mask covers, reading the photo and the mask as two reference pictures, and
    told so by its own prompt embedding (``embedding``: a safetensors file of
    ``prompt_embeds``; no text encoder runs) or, without one, by its ``instruction``."""

    lora: str
    embedding: str | None = None
    instruction: str = ""


@dataclass(frozen=True)
class Layer:
    """A layer of a job (issue 80): its name (for messages), its mask (an array of the
    picture's size, 0 to 1: how much of each pixel is the layer's) and its prompt."""

    name: str
    mask: np.ndarray
    prompt: str


@dataclass(frozen=True)
class Region:
    """A layer as a model paints it in one call (``Backend.regions_in_one_call``): its prompt
    and where, at the call's size (L, 255 = the pixel is all the region's). Regions do not
    overlap; what none covers of the hole is painted by the call's own prompt."""

    prompt: str
    mask: Image.Image


@dataclass
class InpaintRequest:
    image: Image.Image
    mask: Image.Image | None
    prompt: str = ""
    negative_prompt: str = ""
    denoising_strength: float = 1.0  # parameters.PARAMETERS holds the defaults users get
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    seed: int | None = None
    samples: int = 1
    mask_options: MaskOptions = field(default_factory=MaskOptions)
    inpaint_area: InpaintArea = "auto"
    padding: int = 32
    outpaint: Outpaint | None = None
    scheduler: str | None = None  # None = the model's own
    speed: str = "exact"  # parameters.SPEEDS
    clip_skip: int = 1
    #: LoRA files to apply, as (path, weight), in order.
    loras: tuple[tuple[str, float], ...] = ()
    controlnet: ControlNetUse | None = None
    resize: Resize | None = None
    masked_content: str = "original"  # one of MASKED_CONTENT
    #: Pictures an edit model reads beside the one it edits ("the chair of picture 2").
    reference_images: tuple[Image.Image, ...] = ()
    #: Soft inpainting: a pixel of effective mask m (0..1) is regenerated from the step that
    #: leaves the last m of the schedule (differential diffusion), not fully then cross-faded.
    soft: bool = False
    #: An IP-Adapter that reads ``reference_images[0]`` (an inpainting model's reference).
    ip_adapter: IpAdapterUse | None = None
    #: Erase mode on an edit model: its erase adapter (the photo and the mask its references).
    eraser: EraserUse | None = None
    #: Layers, bottom up, each with its own prompt (``engine.layers``): ``run_inpaint`` sends
    #: the job to ``layers.run_layered``; ``mask`` is then the area regenerated.
    layers: tuple[Layer, ...] = ()
    #: Keep the transparency the model paints (``background: transparent``): a backend whose
    #: images have an alpha channel (Qwen-Image-2.1's) gives RGBA results; others, RGB.
    transparent: bool = False


@dataclass
class BackendCall:
    """What a backend receives: an RGB image and a binary hole mask (255 = fill) of one size."""

    image: Image.Image
    hole: Image.Image
    prompt: str
    negative_prompt: str
    denoising_strength: float
    num_inference_steps: int
    guidance_scale: float
    seeds: list[int]
    scheduler: str | None = None
    speed: str = "exact"  # parameters.SPEEDS
    clip_skip: int = 1
    loras: tuple[tuple[str, float], ...] = ()
    controlnet: ControlNetUse | None = None
    #: The effective mask itself (0..255), at the same size: 255 where the mask selects a pixel,
    #: falling to 0 over the feather band outside it. A fill may use it to find the mask's own
    #: edge (where 255 ends) inside the hole.
    weights: Image.Image | None = None
    #: The hole holds an outpaint's new area: there the picture is extended beyond its old
    #: border, with nothing known on the far side (a fill extrapolates, it cannot interpolate).
    outpaint: bool = False
    #: Reference pictures for an edit model (RGB, their own sizes).
    reference_images: tuple[Image.Image, ...] = ()
    #: Soft inpainting (``InpaintRequest.soft``): ``weights`` sets each pixel's strength.
    soft: bool = False
    #: An IP-Adapter reading ``reference_images[0]`` (``InpaintRequest.ip_adapter``).
    ip_adapter: IpAdapterUse | None = None
    #: An erase adapter (``InpaintRequest.eraser``): ``hole`` is the second reference.
    eraser: EraserUse | None = None
    #: A layered job's regions, bottom up, in this call's frame: only for a backend whose
    #: ``regions_in_one_call`` is true (``layers.run_layered``); ``prompt`` paints the rest.
    regions: tuple[Region, ...] = ()


@dataclass
class BackendOutput:
    images: list[Image.Image]
    model: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class InpaintResult:
    images: list[Image.Image]
    seeds: list[int]
    engine: str
    model: str
    width: int
    height: int
    inference_seconds: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgressEvent:
    step: int
    total: int
    preview: bytes | None = None  # a small JPEG, every ``preview_every`` steps


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


def no_progress(event: ProgressEvent) -> None:
    """The progress callback of a caller that passes none."""
    return None


def never_cancelled() -> bool:
    """The cancel check of a caller that passes none."""
    return False
