"""Which backends exist in this process, built from an ``EngineConfig`` the caller supplies."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import memory
from .backends.classical import FILL_WEIGHT, MODEL_NAMES, ClassicalBackend
from .backends.diffusers import DiffusersBackend
from .backends.graphs import DEFAULT_CAPTURE_SECONDS
from .backends.lama import LamaBackend
from .backends.loading import resolve_model
from .engines import CLASSICAL, DIFFUSERS, ENGINES, LAMA
from .parameters import FILL_ENGINES
from .runner import Backend
from .types import EngineError, InvalidInput

#: The most separate regions a fill engine's hole may have. A fill's cost grows with its
#: regions far faster than with its area: a 4096 x 4096 photo with 399,360 isolated masked
#: pixels took PatchMatch 558 s. A person's selection has a handful; a noisy one, hundreds.
MAX_HOLE_REGIONS = 2_000


def check_fillable(engine: str, mask: np.ndarray) -> None:
    """Refuse, before queueing, a job whose engine cannot fill ``mask`` (255 = regenerate):
    one that covers every pixel, or (fill engines) a hole in more than MAX_HOLE_REGIONS
    pieces. About 0.1 s for a 4096 x 4096 mask."""
    # A diffusion model paints from the prompt and needs no context.
    if not ENGINES[engine].fills_from_context or not mask.size:
        return
    if mask.min() > 0:
        raise InvalidInput(
            f"The mask selects every pixel of the image; the {engine} engine fills a hole "
            "from the pixels around it, so part of the image must be kept. Leave some of it "
            "unmasked, or use a diffusion model, which paints from the prompt.",
            field="mask",
        )
    hole = np.ascontiguousarray(mask >= FILL_WEIGHT, dtype=np.uint8)
    regions = cv2.connectedComponents(hole, connectivity=8)[0] - 1
    if regions > MAX_HOLE_REGIONS:
        raise InvalidInput(
            f"The mask is {regions} separate regions; the {engine} engine fills at most "
            f"{MAX_HOLE_REGIONS}. A speckled mask (a noisy selection) joins up with mask_grow "
            "or mask_blur; or select again.",
            field="mask",
        )


@dataclass(frozen=True)
class EngineConfig:
    engine: str = "auto"  # auto | classical | lama | diffusers
    load_diffusers: bool = False
    model: str = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    device: str = "auto"
    #: The long side a diffusion model works at; None: its family's (512 for SD 1.5, 1024 for
    #: SDXL and the newer families), read by the backend from the model it loads.
    working_size: int | None = None
    classical_method: str = "hybrid"
    preview_every: int = 5
    compile_unet: bool = False
    #: Diffusion pipelines a worker keeps loaded at once (least recently used unloaded first).
    model_cache_size: int = 1
    #: Pipeline configurations for single-file checkpoints, one folder per family.
    model_configs: str | None = None
    #: Where a model's weights live on CUDA (``engine.memory``): auto chooses by the free
    #: memory; and the GPU memory a job needs beyond its weights.
    memory_plan: str = memory.AUTO
    memory_headroom: int = memory.DEFAULT_HEADROOM
    #: For a transformer alone (a FLUX single file, a GGUF): the diffusers folder of the same
    #: family whose other parts it runs with (the library chooses it); None: the configs'.
    companion: str | None = None
    #: The LaMa ONNX file when it is present (the caller checks), else None: no lama engine.
    lama_model: str | None = None
    #: CUDA_GRAPH_SIZES (``buckets.parse_sizes``) and how long a load may capture them.
    graph_sizes: str = ""
    graph_seconds: float = DEFAULT_CAPTURE_SECONDS

    def available(self) -> list[str]:
        """Engines a request may name here (each record's ``ready``): classical always, lama
        when its file is present, diffusers when it is loaded."""
        return [name for name, engine in ENGINES.items() if engine.ready(self)]

    def default(self) -> str:
        """The engine of a request that names none and has a prompt (see ``choose``)."""
        if self.engine == "auto":
            return DIFFUSERS.name if DIFFUSERS.ready(self) else CLASSICAL.name
        return self.engine

    def fill_engine(self) -> str | None:
        """With no diffusion model loaded: the fill engine a prompted job runs (it takes no
        model and follows no prompt), which the model lists name instead of a checkpoint;
        None while the diffusers engine is on."""
        if DIFFUSERS.ready(self):
            return None
        name = self.default()
        return name if name in ENGINES and not ENGINES[name].diffusion else CLASSICAL.name

    def choose(self, requested: str | None, prompt: str = "", erase: bool = False) -> str:
        """The engine a job will run on; a client mistake raises ``InvalidInput``.

        Under ``auto``, a request that names no engine and has no prompt asks to remove
        something: the available engine that removes best runs it (LaMa where its file is).
        ``erase`` (erase mode) always runs a remover: the best here, or the one named."""
        if erase and requested in ENGINES and ENGINES[requested].diffusion:
            raise InvalidInput(
                f"Erase mode runs a remover ({', '.join(FILL_ENGINES)}), not the "
                f"{requested} engine (a model, a LoRA or a ControlNet names it): leave them "
                "out, or send mode inpaint.",
                field="mode",
            )
        if erase and requested is None:
            return self.removal_engine()
        removal = requested is None and self.engine == "auto" and not prompt.strip()
        name = (removal and self._remover()) or requested or self.default()
        if name not in ENGINES:
            raise InvalidInput(
                f"Unknown engine {name!r}; choose one of {list(ENGINES)}.", field="engine"
            )
        if name not in self.available():
            raise InvalidInput(
                f"The {name!r} engine is {ENGINES[name].not_ready} on this server "
                f"(available: {', '.join(self.available())}).",
                field="engine",
            )
        return name

    def removal_engine(self) -> str:
        """The engine that removes an object best here: LaMa when its file is present, else
        the classical engine (always there)."""
        return self._remover() or CLASSICAL.name

    def _remover(self) -> str | None:
        """The available engine a removal runs on under ``auto`` (the highest
        ``removal_rank``), or None when none ranks."""
        ranked = [name for name in self.available() if ENGINES[name].removal_rank]
        return max(ranked, key=lambda name: ENGINES[name].removal_rank) if ranked else None

    def model_name(self, engine: str) -> str:
        """The model engine ``engine`` runs, as clients are told it (``public_model_name``)."""
        if ENGINES[engine].diffusion:
            return public_model_name(resolve_model(self.model))
        if ENGINES[engine].own_model_file:
            return Path(self.lama_model).name if self.lama_model else engine
        return MODEL_NAMES[self.classical_method]


def public_model_name(model: str) -> str:
    """A model as an answer names it: a Hugging Face id as it is, a file or folder of this
    server by its name, never its path (SD_INPAINT_MODEL may be one: the answers of every
    user and the anonymous health check named the server's folders)."""
    path = Path(model)
    return path.name if path.is_absolute() or path.exists() else model


_BACKENDS: dict[tuple[str, EngineConfig], Backend] = {}
_LOCK = threading.Lock()


def get_backend(name: str, config: EngineConfig) -> Backend:
    """The process-wide backend instance for ``name`` (models load once per process)."""
    with _LOCK:
        key = (name, config)
        if key not in _BACKENDS:
            if name == CLASSICAL.name:
                _BACKENDS[key] = ClassicalBackend(config.classical_method)
            elif name == LAMA.name:
                if config.lama_model is None:
                    raise EngineError(
                        "The LaMa model file (LAMA_MODEL) is not on this machine; copy it to "
                        "the models folder, or choose another engine."
                    )
                _BACKENDS[key] = LamaBackend(config.lama_model)
            elif name == DIFFUSERS.name:
                _BACKENDS[key] = DiffusersBackend(
                    config.model,
                    config.device,
                    config.working_size,
                    config.preview_every,
                    config.compile_unet,
                    config.model_cache_size,
                    config.model_configs,
                    config.memory_plan,
                    config.memory_headroom,
                    config.companion,
                    config.graph_sizes,
                    config.graph_seconds,
                )
            else:
                raise InvalidInput(f"Unknown engine {name!r}.", field="engine")
        return _BACKENDS[key]
