"""The diffusion model in a worker: loading it once, reporting its state for the web side,
and choosing a job's backend (with the classical fallback under ``INPAINT_ENGINE=auto``)."""

from __future__ import annotations

import logging

from .. import engine
from ..conf import engine_config, record_model_status
from ..models import Generation
from ..params import GenerationParams

logger = logging.getLogger(__name__)


def diffusion_model_load() -> engine.EngineError | None:
    """Load the diffusion model in this process and report the outcome for the web side."""
    config = engine_config()
    backend = engine.get_backend("diffusers", config)
    try:
        backend.load()
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(loaded=False, model=backend.model, error=str(exc))
        return exc
    record_model_status(loaded=True, model=backend.model, device=backend.device)
    logger.info("diffusion model %s loaded on %s", backend.model, backend.device)
    return None


def backend_for(generation: Generation, params: GenerationParams):
    """The job's backend; under INPAINT_ENGINE=auto a model that cannot load falls back to
    the classical engine (a job that asked for diffusers by name fails instead)."""
    config = engine_config()
    if generation.engine != "diffusers":
        return engine.get_backend(generation.engine, config), None
    backend = engine.get_backend("diffusers", config)
    if backend.loaded:  # the usual case: loaded when the worker started
        return backend, None
    error = diffusion_model_load()
    if error is None:
        return backend, None
    if config.engine == "auto" and params.engine is None:
        note = f"The diffusion model could not be loaded; the classical engine ran instead. {error}"
        return engine.get_backend("classical", config), note
    raise error
