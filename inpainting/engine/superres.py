"""Super-resolution models (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT and the other single-image
upscalers spandrel knows): read a file's weights without running any code in it, detect the
architecture and scale with spandrel, and load the model to run over tiles (``upscale``).

Weights come from ``.safetensors`` files, or from ``.pth`` / ``.pt`` files that load with
``torch.load(weights_only=True)``: a file that needs pickle to load (it holds more than tensors)
is refused with the reason, as the library refuses pickled checkpoints.

spandrel imports torchvision for two of its architectures that are not upscalers (LaMa, an
inpainting model, and RestoreFormer, a face restorer), and only to call it while they run.
This deployment has no torchvision (none exists for the CPU build of torch it pins), so where
none is installed spandrel is imported with those two names bound to functions that raise
``EngineError``; the names are gone from ``sys.modules`` again once spandrel is imported, so no
other library believes torchvision is there (docs/adr/0010-spandrel-without-torchvision.md).

torch and spandrel are imported where a model is read (heavy; a worker's alone)."""

from __future__ import annotations

import enum
import importlib.util
import pickle
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families import Unsupported
from .types import EngineError

#: The files an upscaler may be.
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
_IMPORT_LOCK = threading.Lock()
_spandrel_module: Any = None
#: The last upscaler loaded, by its file's path, size and modification time: a worker keeps
#: one (a few MB to a few hundred), so a run of upscales loads it once.
_LOAD_LOCK = threading.Lock()
_loaded: tuple[tuple, Any] | None = None


@dataclass(frozen=True)
class SuperRes:
    """What a probe of an upscaler file found: spandrel's architecture name and the scale."""

    architecture: str
    scale: int


def _needs_torchvision(*args, **kwargs):
    raise EngineError(
        "This spandrel architecture (LaMa or RestoreFormer) needs torchvision, which is not "
        "installed; DreamLayer's upscalers do not use it."
    )


def _without_torchvision() -> dict[str, types.ModuleType]:
    """The two names spandrel imports from torchvision, each raising when called."""
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC")
    functional.rotate = _needs_torchvision
    functional.normalize = _needs_torchvision
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    package = types.ModuleType("torchvision")
    package.transforms = transforms
    return {
        "torchvision": package,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


def spandrel():
    """The spandrel module, imported once (without torchvision where none is installed)."""
    global _spandrel_module
    with _IMPORT_LOCK:
        if _spandrel_module is None:
            if importlib.util.find_spec("torchvision") is not None:
                import spandrel as module  # noqa: PLC0415 - heavy: imported where a model loads
            else:
                stand_ins = _without_torchvision()
                sys.modules.update(stand_ins)
                try:
                    import spandrel as module  # noqa: PLC0415 - heavy, as above
                finally:
                    for name in stand_ins:
                        sys.modules.pop(name, None)
            _spandrel_module = module
        return _spandrel_module


def read_weights(path: Path) -> dict:
    """The tensors of an upscaler file, on the CPU, without running any code in it:
    ``Unsupported`` with the reason for a file that is not one."""
    import torch  # noqa: PLC0415 - heavy: imported where a model loads
    from safetensors import SafetensorError  # noqa: PLC0415 - beside torch
    from safetensors.torch import load_file  # noqa: PLC0415 - beside torch

    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise Unsupported(
            f"{path.name}: upscalers are .safetensors files, or .pth / .pt files of weights only."
        )
    if suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as exc:
            raise Unsupported(f"{path.name}: not a readable .safetensors file ({exc}).") from None
    try:
        weights = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError):
        raise Unsupported(
            f"{path.name} needs pickle to load (it holds more than weights), and loading it "
            "could run any code inside it: refused. Convert it to .safetensors."
        ) from None
    if not isinstance(weights, dict):
        raise Unsupported(f"{path.name}: holds no state dict of weights.")
    return weights


def describe(weights: dict, name: str):
    """spandrel's descriptor of ``weights``: ``Unsupported`` unless it is a super-resolution
    model of RGB pictures."""
    module = spandrel()
    try:
        descriptor = module.ModelLoader().load_from_state_dict(
            module.canonicalize_state_dict(weights)
        )
    except module.UnsupportedModelError:
        raise Unsupported(f"{name}: spandrel knows no architecture with these weights.") from None
    except (KeyError, ValueError, RuntimeError) as exc:
        raise Unsupported(f"{name}: spandrel could not build the model ({exc}).") from None
    if not isinstance(descriptor, module.ImageModelDescriptor) or descriptor.purpose != "SR":
        raise Unsupported(
            f"{name}: a {descriptor.architecture.name} model for {descriptor.purpose}, not a "
            "super-resolution model."
        )
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise Unsupported(f"{name}: not a model of RGB pictures (3 channels in and out).")
    return descriptor


def probe(path: Path) -> SuperRes:
    """The architecture and scale of the upscaler at ``path`` (its weights are read and the
    model built once, on the CPU)."""
    descriptor = describe(read_weights(path), path.name)
    return SuperRes(descriptor.architecture.name, int(descriptor.scale))


def load(path: Path, device: str = "cpu"):
    """The upscaler at ``path``, ready to call on a ``(1, 3, h, w)`` batch in 0..1 (spandrel
    pads to the model's size rules and crops again), in half precision on CUDA where the
    architecture supports it."""
    descriptor = describe(read_weights(path), path.name)
    descriptor.eval().to(device)
    if device.startswith("cuda") and descriptor.supports_half:
        descriptor.half()
    return descriptor


def load_cached(path: Path):
    """``load(path)`` on CUDA where there is one, kept for the next job (``_loaded``)."""
    import torch  # noqa: PLC0415 - heavy: imported where a model loads

    global _loaded
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _LOAD_LOCK:
        if _loaded is None or _loaded[0] != key:
            _loaded = None  # the old model goes before the new one loads
            _loaded = (key, load(path, "cuda" if torch.cuda.is_available() else "cpu"))
        return _loaded[1]
