"""Scheduler names people know (A1111 / ComfyUI style) mapped to diffusers classes."""

from __future__ import annotations

import importlib.util
from typing import Any

from .types import InvalidInput

#: name -> (diffusers class, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DEIS": ("DEISMultistepScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}
#: Schedulers that need an optional package.
_NEEDS = {"LMS": "scipy"}


def scheduler_names() -> list[str]:
    """The names this installation can build (LMS needs scipy)."""
    return [
        name
        for name in SCHEDULERS
        if name not in _NEEDS or importlib.util.find_spec(_NEEDS[name]) is not None
    ]


def canonical_name(name: str) -> str:
    """Accept any case and ``_``/``-`` for spaces: ``dpm++_2m_karras`` -> ``DPM++ 2M Karras``."""
    wanted = name.strip().lower().replace("_", " ").replace("-", " ")
    for known in scheduler_names():
        if known.lower() == wanted:
            return known
    raise InvalidInput(
        f"Unknown scheduler {name!r}; choose one of {scheduler_names()}.", field="scheduler"
    )


def make_scheduler(name: str, base_config: Any) -> Any:
    """A new scheduler instance of ``name`` built from the model's own scheduler config."""
    import diffusers  # noqa: PLC0415 - heavy (torch), loaded only where a model runs

    class_name, extra = SCHEDULERS[canonical_name(name)]
    return getattr(diffusers, class_name).from_config(base_config, **extra)
