"""FooocusAPI's task record: ``task_id``, ``task_status``, ``progress``, ``result`` URLs."""

from __future__ import annotations

from ..models import Generation
from . import native

TASK_STATUS = {
    Generation.Status.QUEUED: "pending",
    Generation.Status.RUNNING: "running",
    Generation.Status.SUCCEEDED: "finished",
    Generation.Status.FAILED: "failed",
    Generation.Status.CANCELLED: "canceled",
}


def task_record(generation: Generation, base: str) -> dict:
    urls = native.image_links(generation, base)
    return {
        "task_id": str(generation.pk),
        "task_status": TASK_STATUS[generation.status],
        "progress": 100
        if generation.status == Generation.Status.SUCCEEDED
        else int(generation.percent),
        "result": urls,
        "seeds": [image.seed for image in generation.images.all()],
        "error": generation.error or None,
        # The fields the engine that ran did not follow (a fill engine: the prompt).
        "warnings": native.warnings(generation),
        "created_at": generation.created_at.isoformat(),
        "finished_at": generation.finished_at.isoformat() if generation.finished_at else None,
    }
