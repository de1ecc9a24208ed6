"""The engine's one entry for a job: ``run_inpaint``, layered or not."""

from __future__ import annotations

from .layers import run_layered
from .runner import Backend, prepare, run_prepared
from .types import (
    CancelCheck,
    InpaintRequest,
    InpaintResult,
    ProgressCallback,
    never_cancelled,
    no_progress,
)


def run_inpaint(
    request: InpaintRequest,
    backend: Backend,
    *,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
    fill_method: str = "patchmatch",
) -> InpaintResult:
    """One job on ``backend``: a layered one (``request.layers``) by ``layers.run_layered``,
    any other by the runner (``runner.prepare`` builds the canvas, the mask and the call,
    ``runner.run_prepared`` calls the backend and composites). ``progress`` is called at each
    step, ``is_cancelled`` between steps; the job raises ``Cancelled`` once it says so.
    ``fill_method`` pre-fills an outpaint's new area (a layered job takes no outpaint).
    Several jobs at once: ``runner.run_inpaint_batch``."""
    progress = progress or no_progress
    is_cancelled = is_cancelled or never_cancelled
    if request.layers:
        return run_layered(request, backend, progress, is_cancelled)
    return run_prepared(prepare(request, backend, fill_method), backend, progress, is_cancelled)
