"""deep-image.ai's job answer: ``status`` (``received``, ``in_progress``, ``complete``, ...),
``job`` and ``result_url``."""

from __future__ import annotations

from ..models import Generation
from . import native

STATUS = {
    Generation.Status.QUEUED: "received",
    Generation.Status.RUNNING: "in_progress",
    Generation.Status.SUCCEEDED: "complete",
    Generation.Status.FAILED: "failed",
    Generation.Status.CANCELLED: "canceled",
}


def job_answer(generation: Generation, base: str) -> dict:
    body = {"status": STATUS[generation.status], "job": str(generation.pk)}
    if generation.status == Generation.Status.SUCCEEDED:
        body["result_url"] = native.image_urls(generation, base)[0]
    if generation.error:
        body["message"] = generation.error
    return body
