"""A picture split into transparent layers (issue 80): what a split asks and the one model
family that splits, plain Python (``backends.split`` runs it with torch).

Qwen-Image-Layered (Alibaba's Qwen team, Apache-2.0; diffusers' ``QwenImageLayeredPipeline``)
reads a photo and paints N RGBA layers that stack back into it: the background, and each
object on its own, its alpha its shape. Each can then be a layer of the canvas (its alpha its
mask), moved, hidden or repainted. It works at one of two sizes (``RESOLUTIONS``, the long
side, the picture's aspect kept); the layers come back at the picture's own size. With no
prompt the model's own Qwen2.5-VL describes the picture first; a prompt saves that pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .layers import MAX_LAYERS
from .types import InvalidInput

#: A split job's engine, as its row records it.
ENGINE = "split"
#: The library family of the layer models, and its label.
LAYER_FAMILY = "qwen-layered"
LAYER_FAMILY_LABEL = "Qwen-Image-Layered"
#: The pipeline class a layer model's ``model_index.json`` names.
PIPELINE = "QwenImageLayeredPipeline"
#: The fewest layers a split makes (the background and one object); the most, a job's layers.
MIN_SPLIT_LAYERS = 2
MAX_SPLIT_LAYERS = MAX_LAYERS
#: The sizes the pipeline works at (its long side); the smaller is the default.
RESOLUTIONS = (640, 1024)


class Unsupported(InvalidInput):
    """A folder that is not a layer model, and why."""


@dataclass(frozen=True)
class SplitRequest:
    image: Image.Image
    layers: int = 4
    prompt: str = ""  # the picture described; "": the model's captioner describes it
    negative_prompt: str = " "
    num_inference_steps: int = 50  # Qwen's example
    guidance_scale: float = 4.0  # true_cfg_scale in Qwen's example
    seed: int | None = None
    resolution: int = RESOLUTIONS[0]


@dataclass(frozen=True)
class SplitResult:
    layers: list[Image.Image]  # RGBA, the picture's size, bottom up
    seed: int
    seconds: float


def check_split(layers: int, resolution: int = RESOLUTIONS[0]) -> None:
    """What a split may ask, refused before any work (``InvalidInput`` naming the field)."""
    if not MIN_SPLIT_LAYERS <= layers <= MAX_SPLIT_LAYERS:
        raise InvalidInput(
            f"A picture splits into {MIN_SPLIT_LAYERS} to {MAX_SPLIT_LAYERS} layers.",
            field="layers",
        )
    if resolution not in RESOLUTIONS:
        raise InvalidInput(
            f"resolution is one of {', '.join(map(str, RESOLUTIONS))}.", field="resolution"
        )


def probe_layer_model(path: Path) -> str:
    """The family of a layer model's folder (``LAYER_FAMILY``), from its ``model_index.json``;
    ``Unsupported`` with the reason for anything else."""
    try:
        index = json.loads((path / "model_index.json").read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise Unsupported(
            f"{path.name}: not a diffusers pipeline folder ({type(exc).__name__})."
        ) from None
    if not isinstance(index, dict) or index.get("_class_name") != PIPELINE:
        named = index.get("_class_name") if isinstance(index, dict) else None
        raise Unsupported(
            f"{path.name}: a {named!r} pipeline is not a layer model (one is a {PIPELINE} "
            "folder: Qwen/Qwen-Image-Layered as published)."
        )
    return LAYER_FAMILY
