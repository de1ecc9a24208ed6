"""The models in a worker (diffusers, lama): loading each once, reporting its state for the
web side, and choosing a job's backend (with the classical fallback under
``INPAINT_ENGINE=auto``)."""

from __future__ import annotations

import logging

from .. import engine
from ..conf import engine_config, record_model_status
from ..models import Generation
from ..params import GenerationParams

logger = logging.getLogger(__name__)

#: Engines with a model file that a worker loads once and reports on.
MODEL_ENGINES = ("diffusers", "lama")


def model_load(name: str) -> engine.EngineError | None:
    """Load engine ``name``'s model (``diffusers`` or ``lama``) in this process and report the
    outcome for the web side."""
    backend = engine.get_backend(name, engine_config())
    try:
        backend.load()
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(engine=name, loaded=False, model=backend.model, error=str(exc))
        return exc
    record_model_status(engine=name, loaded=True, model=backend.model, device=backend.device)
    logger.info("%s model %s loaded on %s", name, backend.model, backend.device)
    return None


def worker_models_load() -> None:
    """Load, at a worker's start, every model this deployment offers (see ``model_load``)."""
    available = engine_config().available()
    for name in MODEL_ENGINES:
        if name in available:
            model_load(name)


def backend_for(generation: Generation, params: GenerationParams):
    """The job's backend; under INPAINT_ENGINE=auto a model that cannot load falls back to
    the classical engine (a job that named its engine fails instead)."""
    config = engine_config()
    if generation.engine not in MODEL_ENGINES:
        return engine.get_backend(generation.engine, config), None
    backend = engine.get_backend(generation.engine, config)
    if backend.loaded:  # the usual case: loaded when the worker started
        return backend, None
    error = model_load(generation.engine)
    if error is None:
        return backend, None
    if config.engine == "auto" and params.engine is None:
        note = (
            f"The {generation.engine} model could not be loaded; the classical engine ran "
            f"instead. {error}"
        )
        return engine.get_backend("classical", config), note
    raise error
