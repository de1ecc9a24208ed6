"""FooocusAPI's task record: ``task_id``, ``task_status``, ``progress``, ``result`` URLs."""

from __future__ import annotations

import base64

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


# --- Fooocus-API (konieshadow/Fooocus-API: /v1 and /v2/generation/...) -----------------------

#: Fooocus-API's ``job_stage`` of a job's status.
JOB_STAGE = {
    Generation.Status.QUEUED: "WAITING",
    Generation.Status.RUNNING: "RUNNING",
    Generation.Status.SUCCEEDED: "SUCCESS",
    Generation.Status.FAILED: "ERROR",
    Generation.Status.CANCELLED: "ERROR",
}
#: Its ``finish_reason`` of an image, by how the job ended.
FINISH_REASON = {
    Generation.Status.SUCCEEDED: "SUCCESS",
    Generation.Status.CANCELLED: "USER_CANCEL",
    Generation.Status.FAILED: "ERROR",
}
#: Its ``job_type`` of an inpaint or outpaint.
INPAINT_JOB = "Image Inpaint or Outpaint"


def generated_images(generation: Generation, base: str, pictures: list[bytes] | None) -> list:
    """Fooocus-API's result: a ``GeneratedImageResult`` per image (its seed a string, as it
    sends them): ``url`` a link that needs no key, ``base64`` the PNG when asked
    (``pictures``, None: not asked). A job that ended without images: one entry saying why
    (``finish_reason``), as Fooocus-API answers a stopped or failed task."""
    links = native.image_links(generation, base)
    seeds = [image.seed for image in generation.images.all()]
    if not seeds:
        reason = FINISH_REASON.get(generation.status, "ERROR")
        return [{"base64": None, "url": None, "seed": "-1", "finish_reason": reason}]
    return [
        {
            "base64": base64.b64encode(pictures[index]).decode() if pictures else None,
            "url": link,
            "seed": str(seed),
            "finish_reason": "SUCCESS",
        }
        for index, (link, seed) in enumerate(zip(links, seeds, strict=True))
    ]


def async_job(generation: Generation, base: str, *, preview: str | None = None) -> dict:
    """Fooocus-API's ``AsyncJobResponse``: the job's stage and progress, its result once it
    ended, ``job_step_preview`` the latest live preview (base64 PNG) when asked for."""
    ended = generation.status in Generation.TERMINAL
    return {
        "job_id": str(generation.pk),
        "job_type": INPAINT_JOB,
        "job_stage": JOB_STAGE[generation.status],
        "job_progress": 100 if ended else int(generation.percent),
        "job_status": generation.error or generation.get_status_display(),
        "job_step_preview": preview,
        "job_result": generated_images(generation, base, None) if ended else None,
        # The fields the engine that ran did not follow (a fill engine: the prompt).
        "warnings": native.warnings(generation),
    }


def job_queue(running: int, finished: int, last: Generation | None) -> dict:
    """Fooocus-API's ``JobQueueInfo``, of the caller's own jobs."""
    return {
        "running_size": running,
        "finished_size": finished,
        "last_job_id": str(last.pk) if last else None,
    }


def all_models(models: list[str], loras: list[str]) -> dict:
    """Fooocus-API's ``AllModelNamesResponse``: the file names a request may give."""
    return {"model_filenames": models, "lora_filenames": loras}
