"""The engine configuration, read from Django settings in one place, and the workers' reports
of their models' state (diffusers, lama; shared through the cache, so the web process can
show them)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from .engine import EngineConfig
from .engine.backends.loading import family_of_model
from .engine.families import FAMILIES, Family
from .models import LibraryModel

STATUS_KEY = "dreamlayer:engine-status:{engine}"


def lama_file() -> Path:
    """Where the LaMa ONNX file is expected: LAMA_MODEL, relative to MODELS_DIR unless it is
    absolute (joining an absolute path keeps it as it is)."""
    return Path(settings.MODELS_DIR) / Path(settings.LAMA_MODEL).expanduser()


def deployment_family() -> Family:
    """The family of the deployment's own SD_INPAINT_MODEL: SD_INPAINT_FAMILY, else read from
    its files (SD 1.5 where this machine has none), once for each state of them (their path's
    modification time), not at each call."""
    if settings.SD_INPAINT_FAMILY:
        if settings.SD_INPAINT_FAMILY not in FAMILIES:
            raise ImproperlyConfigured(f"SD_INPAINT_FAMILY must be one of {', '.join(FAMILIES)}.")
        return FAMILIES[settings.SD_INPAINT_FAMILY]
    model = settings.SD_INPAINT_MODEL
    try:
        stamp = Path(model).stat().st_mtime_ns
    except OSError:  # a Hub id, or a path not there
        stamp = None
    return _family_of(model, stamp)


@functools.lru_cache(maxsize=8)
def _family_of(model: str, stamp: int | None) -> Family:
    return family_of_model(model)


#: How long a process trusts its last reading of whether the library holds a diffusion model
#: (``diffusion_on`` under LOAD_SD_INPAINT=auto): a model installed is offered within this.
DIFFUSION_READ_SECONDS = 1.0
_diffusion_read: tuple[float, bool] | None = None


def diffusion_on() -> bool:
    """Whether diffusion models run here: LOAD_SD_INPAINT when it is true or false; unset
    (auto), whether the model library holds a diffusion model a job may name (enabled, found
    by the last scan), read at most every DIFFUSION_READ_SECONDS: a model installed from the
    admin, or copied in and scanned, runs with no restart of any process, and a web process
    or worker started before it offers and serves it."""
    global _diffusion_read
    if settings.LOAD_SD_INPAINT is not None:
        return settings.LOAD_SD_INPAINT
    now = time.monotonic()
    if _diffusion_read is None or now - _diffusion_read[0] > DIFFUSION_READ_SECONDS:
        try:
            held = LibraryModel.objects.checkpoints().filter(enabled=True, present=True).exists()
        except DatabaseError:  # no database yet (before migrate): none
            held = False
        _diffusion_read = (now, held)
    return _diffusion_read[1]


def diffusion_read_forget() -> None:
    """Read the library again at the next ``diffusion_on`` (this process just scanned it)."""
    global _diffusion_read
    _diffusion_read = None


def engine_config() -> EngineConfig:
    """The engine configuration of this process now; the lama engine exists while its file
    does, and diffusion while the library holds a model (``diffusion_on``), so copying a file
    in (or removing it) needs no restart of the web process or a worker."""
    lama = lama_file()
    return EngineConfig(
        engine=settings.INPAINT_ENGINE,
        load_diffusers=diffusion_on(),
        model=settings.SD_INPAINT_MODEL,
        device=settings.INPAINT_DEVICE,
        working_size=settings.INPAINT_WORKING_SIZE or None,  # None: the model family's
        classical_method=settings.CLASSICAL_METHOD,
        preview_every=settings.INPAINT_PREVIEW_EVERY,
        compile_unet=settings.INPAINT_COMPILE,
        model_cache_size=settings.MODEL_CACHE_SIZE,
        memory_plan=settings.MODEL_MEMORY_PLAN,
        memory_headroom=int(settings.MODEL_MEMORY_HEADROOM_GB * 1024**3),
        model_configs=str(settings.MODEL_CONFIGS_DIR),
        lama_model=str(lama) if lama.is_file() else None,
        graph_sizes=settings.CUDA_GRAPH_SIZES,
        graph_seconds=settings.CUDA_GRAPH_CAPTURE_SECONDS,
    )


def record_model_status(
    *,
    engine: str = "diffusers",
    loaded: bool,
    model: str,
    device: str | None = None,
    error: str | None = None,
) -> None:
    cache.set(
        STATUS_KEY.format(engine=engine),
        {"loaded": loaded, "model": model, "device": device, "error": error},
        timeout=None,
    )


def model_status(engine: str = "diffusers") -> dict[str, Any] | None:
    """The last report of a worker about ``engine``'s model, or None (no worker loaded it, or
    this deployment does not offer it)."""
    config = engine_config()
    if engine not in config.available():
        return None
    try:
        return cache.get(STATUS_KEY.format(engine=engine))
    except Exception:  # the cache being down must not break a page or the health check
        return None
