"""LaMa (big-lama exported to ONNX) through onnxruntime: prompt-less object removal.

The published export (Carve/LaMa-ONNX ``lama_fp32.onnx``) takes ``image`` float32 [1,3,H,W]
RGB in 0..1 and ``mask`` float32 [1,1,H,W] (1 = fill, 0 = keep) and returns ``output`` float32
[1,3,H,W] RGB in 0..255. That export has fixed 512x512 inputs; other exports have dynamic
height and width, and some return 0..1. This backend reads which from the graph itself.

The runner does everything around the model (only-masked crop, resizing to the working size,
the exact-preservation composite); this module only pads the working image to the shape the
graph accepts, runs it and crops the answer back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..types import BackendCall, CancelCheck, EngineError
from .fill import FillBackend

#: The working size when the graph accepts any height and width: big-lama's training size.
DYNAMIC_WORKING_SIZE = 512
#: Dynamic graphs get sides padded to a multiple of this (big-lama downsamples 3 times).
MULTIPLE = 8
#: An output whose maximum is at most this is taken as 0..1 (else 0..255).
UNIT_RANGE_MAX = 1.5
#: Providers in order of preference; those this onnxruntime build lacks are left out.
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
PROMPT_NOTE = (
    "The LaMa engine removes the masked content and ignores the prompt; it is deterministic, "
    "so every seed gives the same image."
)

_SESSIONS: dict[str, Any] = {}  # path -> onnxruntime.InferenceSession, one per file per process
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class GraphShape:
    """What the graph accepts: input names, and the fixed height and width (None = dynamic)."""

    image_input: str
    mask_input: str
    height: int | None
    width: int | None

    @property
    def working_size(self) -> int:
        """The long side the runner brings images to: they must fit the fixed sides."""
        fixed = [side for side in (self.height, self.width) if side is not None]
        if not fixed:
            return DYNAMIC_WORKING_SIZE
        return max(MULTIPLE, min(fixed) // MULTIPLE * MULTIPLE)

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) to pad a ``height`` x ``width`` image to before running the graph."""
        return (_pad_side(height, self.height), _pad_side(width, self.width))


def _pad_side(side: int, fixed: int | None) -> int:
    if fixed is None:
        return -(-side // MULTIPLE) * MULTIPLE
    if side > fixed:
        raise EngineError(f"The LaMa model takes {fixed} pixels on a side; this image has {side}.")
    return fixed


def _fixed(dimension: Any) -> int | None:
    """A graph dimension: an int when fixed, a name or None when dynamic."""
    return dimension if isinstance(dimension, int) and dimension > 0 else None


def read_shape(session: Any) -> GraphShape:
    """The image and mask inputs (by name, else by channel count) and their spatial sides."""
    inputs = {item.name: item for item in session.get_inputs()}
    image = inputs.get("image")
    mask = inputs.get("mask")
    for item in inputs.values():
        channels = item.shape[1] if len(item.shape) == 4 else None
        if image is None and channels == 3:
            image = item
        elif mask is None and channels == 1:
            mask = item
    if image is None or mask is None or len(image.shape) != 4 or len(mask.shape) != 4:
        found = ", ".join(f"{item.name} {item.shape}" for item in inputs.values())
        raise EngineError(
            "This ONNX file does not look like LaMa: it needs an image input [1,3,H,W] and a "
            f"mask input [1,1,H,W]; it has {found or 'no inputs'}."
        )
    return GraphShape(image.name, mask.name, _fixed(image.shape[2]), _fixed(image.shape[3]))


def _providers(available: list[str]) -> list[str]:
    return [name for name in PREFERRED_PROVIDERS if name in available]


def load_session(path: str) -> Any:
    """The process's session for ``path``, opened on first use; failures are ``EngineError``."""
    with _LOAD_LOCK:
        if path in _SESSIONS:
            return _SESSIONS[path]
        import onnxruntime  # noqa: PLC0415 - heavy optional import, loaded only where LaMa runs

        try:
            session = onnxruntime.InferenceSession(
                path, providers=_providers(onnxruntime.get_available_providers())
            )
        except Exception as exc:  # onnxruntime's own types: NoSuchFile, InvalidProtobuf, Fail
            raise EngineError(
                f"Could not load the LaMa model {path}: {exc}. Check the file (its sha256 "
                "against the published one) or set LAMA_MODEL to another file."
            ) from exc
        read_shape(session)  # refuse a file that is not LaMa-shaped now, not at the first job
        _SESSIONS[path] = session
        return session


class LamaBackend(FillBackend):
    prompt_note = PROMPT_NOTE
    name = "lama"
    size_multiple = 8
    max_pixels = max_hole_pixels = None  # brought to its working size

    def __init__(self, path: str) -> None:
        self.path = path
        self.model = Path(path).name

    @property
    def loaded(self) -> bool:
        return self.path in _SESSIONS

    def load(self) -> Any:
        return load_session(self.path)

    @property
    def device(self) -> str:
        """Where the session runs: ``cuda`` when onnxruntime chose its CUDA provider, else
        ``cpu`` (opens the session)."""
        return "cuda" if "CUDAExecutionProvider" in self.load().get_providers() else "cpu"

    @property
    def shape(self) -> GraphShape:
        return read_shape(self.load())

    @property
    def working_size(self) -> int:
        """The fixed side of the graph, or 512 when it is dynamic (opens the session)."""
        return self.shape.working_size

    def fills(self, call: BackendCall, is_cancelled: CancelCheck) -> Iterator[Image.Image]:
        filled = Image.fromarray(
            self.fill(np.asarray(call.image.convert("RGB")), np.asarray(call.hole) > 0), "RGB"
        )
        # Deterministic: one run serves every seed; each sample still reports its step.
        for _seed in call.seeds:
            yield filled.copy()

    def fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Run the graph on ``image`` (uint8 RGB) where ``hole`` is True; uint8 RGB, same size.

        Padding at the bottom and right: the image and its mask reflected (no hard edge for the
        model to continue, and the hole's content never shown as context); cropped off."""
        session = self.load()
        shape = read_shape(session)
        height, width = image.shape[:2]
        padded_h, padded_w = shape.padded_size(height, width)
        pad = ((0, padded_h - height), (0, padded_w - width))
        pixels = np.pad(image, (*pad, (0, 0)), mode="reflect")
        # The mask is reflected with the image: a reflected copy of the object is hole too,
        # never context for the model.
        holes = np.pad(hole.astype(np.float32), pad, mode="reflect")
        nchw = np.ascontiguousarray((pixels.astype(np.float32) / 255.0).transpose(2, 0, 1))
        feeds = {shape.image_input: nchw[None], shape.mask_input: holes[None, None]}
        try:
            output = session.run(None, feeds)[0]
        except Exception as exc:  # onnxruntime's own types (Fail, RuntimeException, ...)
            raise EngineError(f"The LaMa model failed on this image: {exc}") from exc
        output = np.asarray(output, np.float32)[0].transpose(1, 2, 0)[:height, :width]
        if output.max() <= UNIT_RANGE_MAX:
            output = output * 255.0
        return np.clip(np.round(output), 0, 255).astype(np.uint8)
