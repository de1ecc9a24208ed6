"""ModelsLab v6's answers: ``success`` (with ``output`` URLs or base64), ``error``, and
``processing`` with ``fetch_result``."""

from __future__ import annotations

import base64

from django.urls import reverse

from ..models import Generation
from . import native


def answer_body(base: str, generation: Generation, as_base64: bool) -> dict:
    """ModelsLab's success / error / processing JSON for the generation's current state."""
    fetch = base.rstrip("/") + reverse("modelslab-fetch", args=[generation.pk])
    if generation.status == Generation.Status.SUCCEEDED:
        if as_base64:
            output = []
            for image in generation.images.all():
                with image.file.open("rb") as handle:
                    output.append(base64.b64encode(handle.read()).decode())
        else:
            output = native.image_links(generation, base)
        meta = native.metadata(generation, as_requested=True)
        meta.update(generation.metadata.get("modelslab", {}))
        return {
            "status": "success",
            "generationTime": generation.inference_seconds,
            "id": str(generation.pk),
            "output": output,
            "proxy_links": output if not as_base64 else [],
            "nsfw_content_detected": False,
            "meta": meta,
        }
    if generation.status in (Generation.Status.FAILED, Generation.Status.CANCELLED):
        message = generation.error or "The generation was cancelled."
        return {"status": "error", "id": str(generation.pk), "message": message}
    processing = native.img2img_processing(generation, base)
    return {
        "status": "processing",
        "id": str(generation.pk),
        "eta": processing["eta"],
        "message": "The image is being generated; fetch it from fetch_result.",
        "fetch_result": fetch,
        "output": [],
        "future_links": [],
        "meta": native.metadata(generation, as_requested=True),
    }
