"""Which backends exist in this process, built from an ``EngineConfig`` the caller supplies."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .backends.classical import MODEL_NAMES, ClassicalBackend
from .backends.diffusers import DiffusersBackend, resolve_model
from .runner import Backend
from .types import InvalidInput

ENGINE_NAMES = ("classical", "diffusers")
#: Engines that fill a hole from the pixels around it: a mask over every pixel leaves them
#: nothing to fill from. A diffusion model paints from the prompt and needs no context.
FILLS_FROM_CONTEXT = frozenset({"classical"})


def check_fillable(engine: str, mask: np.ndarray) -> None:
    """Refuse, before queueing, a job whose engine cannot fill ``mask`` (255 = regenerate)."""
    if engine in FILLS_FROM_CONTEXT and mask.size and mask.min() > 0:
        raise InvalidInput(
            f"The mask selects every pixel of the image; the {engine} engine fills a hole "
            "from the pixels around it, so part of the image must be kept. Leave some of it "
            "unmasked, or use a diffusion model, which paints from the prompt.",
            field="mask",
        )


@dataclass(frozen=True)
class EngineConfig:
    engine: str = "auto"  # auto | classical | diffusers
    load_diffusers: bool = False
    model: str = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    device: str = "auto"
    working_size: int = 512
    classical_method: str = "hybrid"
    preview_every: int = 5
    compile_unet: bool = False

    def available(self) -> list[str]:
        """Engines a request may name: classical always, diffusers when it is loaded."""
        return ["classical", "diffusers"] if self.load_diffusers else ["classical"]

    def default(self) -> str:
        if self.engine == "auto":
            return "diffusers" if self.load_diffusers else "classical"
        return self.engine

    def choose(self, requested: str | None) -> str:
        """The engine a job will run on; a client mistake raises ``InvalidInput``."""
        name = requested or self.default()
        if name not in ENGINE_NAMES:
            raise InvalidInput(
                f"Unknown engine {name!r}; choose one of {list(ENGINE_NAMES)}.", field="engine"
            )
        if name not in self.available():
            raise InvalidInput(
                f"The {name!r} engine is not loaded on this server "
                f"(available: {', '.join(self.available())}).",
                field="engine",
            )
        return name

    def model_name(self, engine: str) -> str:
        if engine == "diffusers":
            return resolve_model(self.model)
        return MODEL_NAMES[self.classical_method]


_BACKENDS: dict[tuple[str, EngineConfig], Backend] = {}
_LOCK = threading.Lock()


def get_backend(name: str, config: EngineConfig) -> Backend:
    """The process-wide backend instance for ``name`` (models load once per process)."""
    with _LOCK:
        key = (name, config)
        if key not in _BACKENDS:
            if name == "classical":
                _BACKENDS[key] = ClassicalBackend(config.classical_method)
            elif name == "diffusers":
                _BACKENDS[key] = DiffusersBackend(
                    config.model,
                    config.device,
                    config.working_size,
                    config.preview_every,
                    config.compile_unet,
                )
            else:
                raise InvalidInput(f"Unknown engine {name!r}.")
        return _BACKENDS[key]
