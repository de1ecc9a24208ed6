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


#: deep-image.ai's names of the fields a warning can name.
FIELD = {"prompt": "generative_fill.description"}


def job_answer(generation: Generation, base: str) -> dict:
    body = {"status": STATUS[generation.status], "job": str(generation.pk)}
    if generation.status == Generation.Status.SUCCEEDED:
        body["result_url"] = native.image_links(generation, base)[0]
        # The fields the engine that ran did not follow (a fill engine: the description).
        body["warnings"] = native.warnings(generation, FIELD)
    if generation.error:
        body["message"] = generation.error
    return body
