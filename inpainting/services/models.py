"""The models in a worker (diffusers, lama): loading each once, reporting its state for the
web side, and choosing a job's backend (with the classical fallback under
``INPAINT_ENGINE=auto``)."""

from __future__ import annotations

import logging
from dataclasses import replace

from django.conf import settings

from .. import engine
from ..conf import engine_config, record_model_status
from ..engine.probe import FAMILIES
from ..models import Generation, LibraryModel
from ..params import GenerationParams
from .library import library_model_for_job

logger = logging.getLogger(__name__)

#: Engines with a model file that a worker loads once and reports on.
MODEL_ENGINES = ("diffusers", "lama")


def backend_config(name: str, model: LibraryModel | None = None) -> engine.EngineConfig:
    """The configuration a backend runs with: for ``diffusers``, the library ``model`` (its
    path and its family's working size unless INPAINT_WORKING_SIZE sets one), else the
    library's default, else the deployment's SD_INPAINT_MODEL."""
    config = engine_config()
    if name != "diffusers":
        return config
    model = model or library_model_for_job(None)
    if model is None:
        return config
    size = settings.INPAINT_WORKING_SIZE or FAMILIES[model.family]
    return replace(config, model=model.path, working_size=size)


def model_load(name: str) -> engine.EngineError | None:
    """Load engine ``name``'s model (``diffusers``: the default one; ``lama``) in this process
    and report the outcome for the web side."""
    backend = engine.get_backend(name, backend_config(name))
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
    """The job's backend (a diffusers job: its library model); under INPAINT_ENGINE=auto a
    model that cannot load falls back to the classical engine (a job that named its engine or
    model fails instead)."""
    config = engine_config()
    if generation.engine not in MODEL_ENGINES:
        return engine.get_backend(generation.engine, config), None
    model = LibraryModel.objects.filter(name=generation.model_name).first()
    backend = engine.get_backend(generation.engine, backend_config(generation.engine, model))
    was_loaded = backend.loaded
    try:
        backend.load()  # at once when it is loaded; else it loads now (and may unload another)
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(
            engine=generation.engine, loaded=False, model=backend.model, error=str(exc)
        )
        if config.engine == "auto" and params.engine is None and params.model is None:
            note = (
                f"The {generation.engine} model could not be loaded; the classical engine ran "
                f"instead. {exc}"
            )
            return engine.get_backend("classical", config), note
        raise
    if not was_loaded:
        record_model_status(
            engine=generation.engine, loaded=True, model=backend.model, device=backend.device
        )
    return backend, None
