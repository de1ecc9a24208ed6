"""The models in a worker (diffusers, lama): which library models it serves (and so which
Celery queues it consumes), loading each once, reporting its state for the web side, and
choosing a job's backend (with the classical fallback under ``INPAINT_ENGINE=auto``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import connections

from .. import engine, fleet, selectors
from ..conf import engine_config, record_model_status
from ..engine.backends.loading import (
    device_memory,
    loaded_models,
    loaded_pipelines,
    resolve_device,
)
from ..errors import ClientError, echoed
from ..metrics import model_load_record
from ..models import Generation, LibraryModel
from ..params import GenerationParams
from .library import library_companion, library_model_local_path, library_model_runnable

logger = logging.getLogger(__name__)

#: Engines with a model file that a worker loads once and reports on.
MODEL_ENGINES = tuple(
    name for name, record in engine.ENGINES.items() if record.diffusion or record.own_model_file
)


def backend_config(name: str, model: LibraryModel | None = None) -> engine.EngineConfig:
    """The configuration a backend runs with: for ``diffusers`` and a library ``model``, its
    files on this machine (the backend works at its family's working size unless
    INPAINT_WORKING_SIZE sets one); without one, the deployment's SD_INPAINT_MODEL. A library
    model this machine does not have is an ``EngineError``."""
    config = engine_config()
    if not engine.runs_a_model(name) or model is None:
        return config
    path = library_model_local_path(model)
    if path is None:
        raise engine.EngineError(
            f"The model {model.name!r} is not on this worker's disk (MODELS_DIR or the Hugging "
            "Face cache); copy it there, or route its jobs to a worker that has it."
        )
    return replace(
        config,
        model=str(path),
        companion=library_companion(model),
        memory_plan=model.memory_plan or config.memory_plan,
    )


def _load_and_report(name: str, backend, label: str | None = None) -> engine.EngineError | None:
    """Load ``backend``'s model (at once when it is loaded) and report a change of state for
    the web side, and a load to the metrics (as ``label``: the library name); the loading
    error, if any."""
    was_loaded = backend.loaded
    started = time.perf_counter()
    try:
        backend.load()
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(engine=name, loaded=False, model=backend.model, error=str(exc))
        return exc
    if not was_loaded:
        seconds = time.perf_counter() - started
        record_model_status(engine=name, loaded=True, model=backend.model, device=backend.device)
        model_load_record(model=label or Path(backend.model).name, seconds=seconds)
        logger.info(
            "%s model %s loaded on %s in %.1f s", name, backend.model, backend.device, seconds
        )
    return None


def model_load(name: str) -> engine.EngineError | None:
    """Load engine ``name``'s model (``diffusers``: the deployment's SD_INPAINT_MODEL;
    ``lama``) in this process and report the outcome for the web side."""
    return _load_and_report(name, engine.get_backend(name, backend_config(name)))


def worker_models_served() -> list[LibraryModel]:
    """The library models this worker serves: of the enabled ones that can run here and whose
    files are on this machine's disk, those WORKER_MODELS names (all of them when it is
    empty, none when it is ``none`` or the diffusers engine is off). A worker finds a model
    by its name in its own MODELS_DIR or Hugging Face cache."""
    wanted = settings.WORKER_MODELS.strip()
    if wanted.lower() == "none" or not engine_config().load_diffusers:
        return []
    models = [
        m
        for m in selectors.library_model_list()
        if library_model_local_path(m) is not None and library_model_runnable(m)
    ]
    if wanted:
        names = {name.strip() for name in wanted.split(",")}
        models = [m for m in models if m.name in names]
    return models


def worker_models_disabled_here() -> set[str]:
    """The library models, disabled now, that this worker would serve if they were enabled."""
    wanted = settings.WORKER_MODELS.strip()
    if wanted.lower() == "none" or not engine_config().load_diffusers:
        return set()
    names = {name.strip() for name in wanted.split(",")} if wanted else None
    return {
        m.name
        for m in LibraryModel.objects.checkpoints().filter(enabled=False, present=True)
        if (names is None or m.name in names) and library_model_local_path(m) is not None
    }


def worker_models_load(served: list[LibraryModel]) -> None:
    """Load, at a worker's start, the models it will run (see ``model_load``): lama when its
    file is here; of the library, the default model when this worker serves it, else the
    first model it serves; with an empty library, the deployment's SD_INPAINT_MODEL."""
    available = engine_config().available()
    for name in available:
        if engine.ENGINES[name].own_model_file:
            model_load(name)
    if not any(engine.runs_a_model(name) for name in available):
        return
    library = selectors.library_model_list()
    if not library.exists():
        model_load("diffusers")
        return
    first = next((m for m in served if m.is_default), None) or next(iter(served), None)
    if first is not None:
        _load_and_report(
            "diffusers",
            engine.get_backend("diffusers", backend_config("diffusers", first)),
            first.name,
        )


def model_served_check(name: str) -> None:
    """A job for library model ``name`` can be queued only while a live worker serves it: else
    a 503 that says so (instead of a job that waits for ever)."""
    workers = fleet.workers_serving(name)
    if workers:
        return
    if workers is None:
        raise ClientError(
            "The server cannot tell which workers are running now (its Redis cannot be "
            "read); try again shortly.",
            status=503,
        )
    raise ClientError(
        f"No worker serving the model {echoed(name)} is running now; start one with that model on "
        "its disk (WORKER_MODELS names the models a worker serves), or choose another model "
        "(GET /api/models).",
        field="model",
        status=503,
    )


class WorkerReporter:
    """A thread of a worker process. Every WORKER_REPORT_SECONDS it makes its worker consume
    the queue of each library model it serves (asking over Celery's control channel, which
    the worker's own loop answers) and stop consuming those it no longer serves, then reports
    to the fleet what it serves and the pipelines it holds. It loads the start models first,
    from a thread of their own (so a slow load delays neither the process' start nor its
    reports), and takes the models' queues once they are loaded. A queue stays
    consumed when its model is disabled: the jobs queued for it then fail saying so, instead
    of waiting for ever."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.key = f"{worker}:{os.getpid()}"
        self.consuming: dict[str, str] = {}  # model name -> its queue, confirmed by the worker
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        fleet.report_remove(self.key)

    def _consume(self, queue: str) -> bool:
        """Whether this process' worker answered that it consumes ``queue`` now."""
        replies = current_app.control.add_consumer(
            queue, destination=[self.worker], reply=True, timeout=2
        )
        return bool(replies)

    def _stop_consuming(self, queue: str) -> bool:
        """Whether this process' worker answered that it no longer consumes ``queue``."""
        replies = current_app.control.cancel_consumer(
            queue, destination=[self.worker], reply=True, timeout=2
        )
        return bool(replies)

    def tick(self) -> list[LibraryModel]:
        served = worker_models_served()
        wanted = {m.name: fleet.model_queue(m.name) for m in served}
        if self._loaded.is_set():  # consume only once the start models are in memory
            for name, queue in wanted.items():
                if name not in self.consuming and self._consume(queue):
                    self.consuming[name] = queue
        # A model gone from this machine's disk or from the library, or no longer named by
        # WORKER_MODELS: its jobs are for the workers that have it. (A model disabled in the
        # library keeps its queue, so that its queued jobs fail saying so.)
        kept = set(wanted) | worker_models_disabled_here()
        for name in [n for n in self.consuming if n not in kept]:
            if self._stop_consuming(self.consuming[name]):
                del self.consuming[name]
        names = {str(library_model_local_path(m)): m.name for m in served}
        device = resolve_device(settings.INPAINT_DEVICE)
        fleet.report_write(
            self.key,
            {
                "worker": self.worker,
                "pid": os.getpid(),
                "models": sorted(n for n in self.consuming if n in wanted),
                "loaded": [names.get(path, Path(path).name) for path in loaded_models()],
                # The memory each loaded pipeline's weights hold, by the same names.
                "memory": {
                    names.get(held["model"], Path(held["model"]).name): held["bytes"]
                    for held in loaded_pipelines()
                },
                "device": device,
                # Its GPU's memory: what the Model installs page says this server can run.
                "gpu_memory": device_memory(device),
            },
        )
        return served

    def _run(self) -> None:
        """The ticks, on one database connection of this thread's own, kept from one to the
        next (a new one each tick was a connection every WORKER_REPORT_SECONDS per worker)
        and dropped after a failed tick, so that the next opens a fresh one."""
        loading = None
        try:
            while not self._stop.is_set():
                try:
                    served = self.tick()
                    if loading is None:  # reports go on while the models load
                        loading = threading.Thread(
                            target=self._load, args=(served,), name="model-load", daemon=True
                        )
                        loading.start()
                except Exception:  # noqa: BLE001 - a lost tick (database or Redis down) is retried
                    logger.exception("worker report failed; trying again")
                    connections.close_all()
                self._stop.wait(settings.WORKER_REPORT_SECONDS)
        finally:
            connections.close_all()

    def _load(self, served: list[LibraryModel]) -> None:
        """Load the start models, then let the reports take the models' queues: a job never
        races the start load for the memory (with MODEL_CACHE_SIZE=1, one would unload the
        other's pipeline)."""
        try:
            worker_models_load(served)
        except Exception:  # noqa: BLE001 - the jobs then load (and report) it themselves
            logger.exception("loading the start models failed")
        finally:
            connections.close_all()
            self._loaded.set()


_REPORTER: WorkerReporter | None = None


def worker_reporter_start(worker: str) -> None:
    """Start this worker process' reporter (once)."""
    global _REPORTER
    if _REPORTER is None:
        _REPORTER = WorkerReporter(worker)
        _REPORTER.start()


def worker_reporter_stop() -> None:
    if _REPORTER is not None:
        _REPORTER.stop()


def backend_for(generation: Generation, params: GenerationParams):
    """The job's backend (a diffusers job: its planned library model, which must still be
    enabled and present); under INPAINT_ENGINE=auto a model that cannot load falls back to
    the classical engine (a job that named its engine or model fails instead). Returns the
    backend and what the job's metadata should say of it: ``fallback`` (why another engine
    ran) or ``model_load_seconds`` (how long the job waited for its model to load)."""
    config = engine_config()
    if generation.engine not in MODEL_ENGINES:
        return engine.get_backend(generation.engine, config), {}
    model = None
    if engine.runs_a_model(generation.engine):
        # The job's plan, by id: a model renamed since it was queued still runs.
        model = selectors.library_model_list().filter(pk=generation.library_model_id).first()
        if model is None and (
            generation.library_model_id is not None
            or generation.model_name != config.model_name(engine.DIFFUSERS.name)
        ):
            raise engine.EngineError(
                f"The model {generation.model_name!r} is no longer in the library (disabled or "
                "removed since the job was queued)."
            )
    backend = engine.get_backend(generation.engine, backend_config(generation.engine, model))
    was_loaded = backend.loaded
    started = time.perf_counter()
    # Loading may unload another model first.
    error = _load_and_report(generation.engine, backend, model.name if model else None)
    if error is None:
        seconds = round(time.perf_counter() - started, 3)
        return backend, {} if was_loaded else {"model_load_seconds": seconds}
    if config.engine == "auto" and params.requested_engine is None:
        note = (
            f"The {generation.engine} model could not be loaded; the classical engine ran "
            f"instead. {error}"
        )
        return engine.get_backend("classical", config), {"fallback": note}
    raise error
