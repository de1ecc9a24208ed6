"""DreamLayer's inference engine: plain Python, no Django.

A request dataclass in, a result dataclass out; progress and cancel are callables passed in.
"""

from .compose import tint_regenerated
from .engines import DIFFUSERS, ENGINES, runs_a_model
from .images import encode_as, encode_png, png_with_parameters, thumbnail_webp, to_rgb
from .jobs import run_inpaint
from .masks import effective_mask, has_transparent_pixels, regenerated_colour
from .prompts import check_prompts
from .registry import EngineConfig, check_fillable, get_backend
from .runner import (
    BATCH_SETTINGS,
    canvas_mask,
    prepare_canvas,
    prepare_mask,
    resolve_seeds,
    run_inpaint_batch,
)
from .types import (
    Cancelled,
    ControlNetUse,
    EngineError,
    EraserUse,
    InpaintRequest,
    InpaintResult,
    InvalidInput,
    IpAdapterUse,
    MaskOptions,
    Outpaint,
    ProgressEvent,
    Resize,
)

__all__ = [
    "DIFFUSERS",
    "ENGINES",
    "runs_a_model",
    "BATCH_SETTINGS",
    "Cancelled",
    "ControlNetUse",
    "EraserUse",
    "IpAdapterUse",
    "EngineConfig",
    "EngineError",
    "InpaintRequest",
    "InpaintResult",
    "InvalidInput",
    "MaskOptions",
    "Outpaint",
    "ProgressEvent",
    "Resize",
    "canvas_mask",
    "effective_mask",
    "encode_as",
    "thumbnail_webp",
    "encode_png",
    "png_with_parameters",
    "tint_regenerated",
    "to_rgb",
    "check_fillable",
    "check_prompts",
    "get_backend",
    "prepare_canvas",
    "prepare_mask",
    "regenerated_colour",
    "has_transparent_pixels",
    "resolve_seeds",
    "run_inpaint",
    "run_inpaint_batch",
]
