"""The models in a worker (diffusers, lama): loading each once, reporting its state for the
web side, and choosing a job's backend (with the classical fallback under
``INPAINT_ENGINE=auto``)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from django.conf import settings

from .. import engine, selectors
from ..conf import engine_config, record_model_status
from ..engine.probe import FAMILIES
from ..models import Generation, LibraryModel
from ..params import GenerationParams
from .library import library_model_for_job

logger = logging.getLogger(__name__)

#: Engines with a model file that a worker loads once and reports on.
MODEL_ENGINES = ("diffusers", "lama")


def backend_config(name: str, model: LibraryModel | None = None) -> engine.EngineConfig:
    """The configuration a backend runs with: for ``diffusers`` and a library ``model``, its
    path and its family's working size (unless INPAINT_WORKING_SIZE sets one); without one,
    the deployment's SD_INPAINT_MODEL."""
    config = engine_config()
    if name != "diffusers" or model is None:
        return config
    size = settings.INPAINT_WORKING_SIZE or FAMILIES[model.family]
    return replace(config, model=model.path, working_size=size)


def _load_and_report(name: str, backend) -> engine.EngineError | None:
    """Load ``backend``'s model (at once when it is loaded) and report a change of state for
    the web side; the loading error, if any."""
    was_loaded = backend.loaded
    try:
        backend.load()
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(engine=name, loaded=False, model=backend.model, error=str(exc))
        return exc
    if not was_loaded:
        record_model_status(engine=name, loaded=True, model=backend.model, device=backend.device)
        logger.info("%s model %s loaded on %s", name, backend.model, backend.device)
    return None


def model_load(name: str) -> engine.EngineError | None:
    """Load engine ``name``'s model (``diffusers``: the default one; ``lama``) in this process
    and report the outcome for the web side."""
    default = library_model_for_job(None) if name == "diffusers" else None
    return _load_and_report(name, engine.get_backend(name, backend_config(name, default)))


def worker_models_load() -> None:
    """Load, at a worker's start, every model this deployment offers (see ``model_load``)."""
    available = engine_config().available()
    for name in MODEL_ENGINES:
        if name in available:
            model_load(name)


def backend_for(generation: Generation, params: GenerationParams):
    """The job's backend (a diffusers job: its library model, which must still be enabled and
    present); under INPAINT_ENGINE=auto a model that cannot load falls back to the classical
    engine (a job that named its engine or model fails instead). Returns the backend and what
    the job's metadata should say of it: ``fallback`` (why another engine ran) or
    ``model_load_seconds`` (how long the job waited for its model to load)."""
    config = engine_config()
    if generation.engine not in MODEL_ENGINES:
        return engine.get_backend(generation.engine, config), {}
    model = None
    if generation.engine == "diffusers":
        model = selectors.library_model_list().filter(name=generation.model_name).first()
        if model is None and generation.model_name != config.model_name("diffusers"):
            raise engine.EngineError(
                f"The model {generation.model_name!r} is no longer in the library (disabled or "
                "removed since the job was queued)."
            )
    backend = engine.get_backend(generation.engine, backend_config(generation.engine, model))
    was_loaded = backend.loaded
    started = time.perf_counter()
    error = _load_and_report(generation.engine, backend)  # may unload another model first
    if error is None:
        seconds = round(time.perf_counter() - started, 3)
        return backend, {} if was_loaded else {"model_load_seconds": seconds}
    if config.engine == "auto" and params.engine is None and params.model is None:
        note = (
            f"The {generation.engine} model could not be loaded; the classical engine ran "
            f"instead. {error}"
        )
        return engine.get_backend("classical", config), {"fallback": note}
    raise error
