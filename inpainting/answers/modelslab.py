"""ModelsLab v6's answers: ``success`` (with ``output`` URLs or base64), ``error``, and
``processing`` with ``fetch_result``."""

from __future__ import annotations

import base64

from django.conf import settings
from django.urls import reverse

from ..models import Generation
from . import native

#: The kind of route a job came through (its path's first part under ``/api/v6/``) -> the URL
#: name of that kind's fetch; ``images/`` and the rest: ``modelslab-fetch``.
FETCH_ROUTES = {
    "realtime": "modelslab-realtime-fetch",
    "image_editing": "modelslab-image-editing-fetch",
}


def answer_body(base: str, generation: Generation, as_base64: bool) -> dict:
    """ModelsLab's success / error / processing JSON for the generation's current state."""
    kind = (generation.metadata or {}).get("modelslab", {}).get("route", "").split("/")[0]
    fetch = base.rstrip("/") + reverse(
        FETCH_ROUTES.get(kind, "modelslab-fetch"), args=[generation.pk]
    )
    if generation.status == Generation.Status.SUCCEEDED:
        if as_base64:
            output = []
            for image in generation.images.all():
                with image.file.open("rb") as handle:
                    output.append(base64.b64encode(handle.read()).decode())
        else:
            output = native.image_links(generation, base)
        meta = native.metadata(generation)
        meta.update(generation.metadata.get("modelslab", {}))
        return {
            "status": "success",
            "generationTime": generation.inference_seconds,
            "id": str(generation.pk),
            "output": output,
            "proxy_links": output if not as_base64 else [],
            "nsfw_content_detected": False,
            "meta": meta,
            # The rest of ModelsLab's documented answer: where the webhook stands ("" when
            # none was asked for), and its tip (here: how long the output links work).
            "webhook_status": generation.webhook_status,
            "tip": "output holds base64 PNGs."
            if as_base64
            else f"output's links need no key and work for {settings.IMAGE_LINK_SECONDS} s.",
        }
    if generation.status in (Generation.Status.FAILED, Generation.Status.CANCELLED):
        message = generation.error or "The generation was cancelled."
        return {"status": "error", "id": str(generation.pk), "message": message}
    eta = native.img2img_processing(generation, base)["eta"]
    return {
        "status": "processing",
        "id": str(generation.pk),
        # A number, as ModelsLab's clients read it; 0 (poll now) before any job of the
        # engine has finished, which the tip says.
        "eta": 0.0 if eta is None else eta,
        "message": "The image is being generated; fetch it from fetch_result.",
        "tip": "eta is the estimated wait in seconds."
        if eta is not None
        else "No estimate yet: no job of this engine has finished since the server started.",
        "tip_1": "POST your key to fetch_result to get it.",
        "webhook_status": generation.webhook_status,
        "fetch_result": fetch,
        "output": [],
        "future_links": [],
        "meta": native.metadata(generation),
    }
