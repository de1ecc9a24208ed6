"""The engines, each declared once: what it takes, what it needs to run here and what it says.

Every decision about what an engine does reads its record (``ENGINES[name]``, ``runs_a_model``),
never its name; the registry builds each record's backend (``registry.get_backend``). Adding an
engine is a record here and a backend (docs/development.md, "Adding an engine").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Engine:
    name: str
    #: It runs a diffusion model of the library: the family's steps and guidance, the prompt,
    #: LoRAs, ControlNet, references, a model's own queue and batches. False: a fill engine,
    #: which takes no model and follows no prompt (``parameters.FILL_ENGINE_UNUSED`` are what it
    #: is sent and does not use).
    diffusion: bool
    #: It fills a hole from the pixels around it: a mask over every pixel, or in thousands of
    #: pieces, is refused before queueing (``registry.check_fillable``).
    fills_from_context: bool
    #: Whether it runs in a process with this ``EngineConfig``.
    ready: Callable[[Any], bool]
    #: What a request naming it is told when it does not run here.
    not_ready: str
    #: Under ``engine: auto``, a removal (no prompt, no engine named) runs on the available
    #: engine of the highest rank; 0: never chosen for that (the removal then runs on the
    #: default engine, as a prompted job does).
    removal_rank: int = 0
    #: Its backend loads a model file of its own (not the library's): a worker loads it at
    #: its start (``services.models.models_preload``).
    own_model_file: bool = False


CLASSICAL = Engine(
    "classical",
    diffusion=False,
    fills_from_context=True,
    ready=lambda config: True,
    not_ready="always there",
)
LAMA = Engine(
    "lama",
    diffusion=False,
    fills_from_context=True,
    ready=lambda config: config.lama_model is not None,
    not_ready="not installed: its model file (LAMA_MODEL, big-lama in ONNX form) is missing",
    removal_rank=1,
    own_model_file=True,
)
DIFFUSERS = Engine(
    "diffusers",
    diffusion=True,
    fills_from_context=False,
    ready=lambda config: config.load_diffusers,
    not_ready="not loaded",
)

#: Every engine a request may name, in the order the API lists them.
ENGINES: dict[str, Engine] = {engine.name: engine for engine in (CLASSICAL, LAMA, DIFFUSERS)}
#: The engines that run a diffusion model of the library (for the database's filters).
DIFFUSION_ENGINES = tuple(name for name, engine in ENGINES.items() if engine.diffusion)


def runs_a_model(name: str) -> bool:
    """Whether the engine ``name`` runs a diffusion model of the library (False for a fill
    engine, and for a name that is no engine of a request: an upscale job's)."""
    engine = ENGINES.get(name)
    return engine is not None and engine.diffusion
