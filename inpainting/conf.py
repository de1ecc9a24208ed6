"""The engine configuration, read from Django settings in one place."""

from django.conf import settings

from .engine import EngineConfig


def engine_config() -> EngineConfig:
    return EngineConfig(
        engine=settings.INPAINT_ENGINE,
        load_diffusers=settings.LOAD_SD_INPAINT,
        model=settings.SD_INPAINT_MODEL,
        device=settings.INPAINT_DEVICE,
        working_size=settings.INPAINT_WORKING_SIZE,
        classical_method=settings.CLASSICAL_METHOD,
        preview_every=settings.INPAINT_PREVIEW_EVERY,
    )
