"""The engine configuration, read from Django settings in one place, and the workers' report
of the diffusion model's state (shared through the cache, so the web process can show it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache

from .engine import EngineConfig

STATUS_KEY = "dreamlayer:engine-status:diffusers"


def lama_file() -> Path:
    """Where the LaMa ONNX file is expected: LAMA_MODEL, relative to MODELS_DIR unless it is
    absolute (joining an absolute path keeps it as it is)."""
    return Path(settings.MODELS_DIR) / Path(settings.LAMA_MODEL).expanduser()


def engine_config() -> EngineConfig:
    """The engine configuration of this process now; the lama engine exists while its file
    does, so copying the file in (or removing it) needs no restart of the web process."""
    lama = lama_file()
    return EngineConfig(
        engine=settings.INPAINT_ENGINE,
        load_diffusers=settings.LOAD_SD_INPAINT,
        model=settings.SD_INPAINT_MODEL,
        device=settings.INPAINT_DEVICE,
        working_size=settings.INPAINT_WORKING_SIZE,
        classical_method=settings.CLASSICAL_METHOD,
        preview_every=settings.INPAINT_PREVIEW_EVERY,
        compile_unet=settings.INPAINT_COMPILE,
        lama_model=str(lama) if lama.is_file() else None,
    )


def record_model_status(
    *, loaded: bool, model: str, device: str | None = None, error: str | None = None
) -> None:
    cache.set(
        STATUS_KEY,
        {"loaded": loaded, "model": model, "device": device, "error": error},
        timeout=None,
    )


def model_status() -> dict[str, Any] | None:
    """The last report of a worker about the diffusion model, or None (no worker loaded it)."""
    if not settings.LOAD_SD_INPAINT:
        return None
    try:
        return cache.get(STATUS_KEY)
    except Exception:  # the cache being down must not break a page or the health check
        return None
