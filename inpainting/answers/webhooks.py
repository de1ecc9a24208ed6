"""The final JSON a webhook carries: the same shape the job's own API answers with."""

from __future__ import annotations

from django.conf import settings

from ..models import Generation
from . import fooocus, modelslab, native


def payload_for(generation: Generation) -> dict:
    base = settings.PUBLIC_BASE_URL
    if generation.client == Generation.Client.MODELSLAB:
        body = modelslab.answer_body(base, generation, as_base64=False)
        body["track_id"] = (generation.metadata.get("modelslab") or {}).get("track_id")
        return body
    if generation.client == Generation.Client.FOOOCUS:
        return fooocus.task_record(generation, base)
    if generation.status == Generation.Status.SUCCEEDED:
        return native.img2img_success(generation, base)
    return {
        "status": "error" if generation.status == Generation.Status.FAILED else "cancelled",
        "id": str(generation.pk),
        "message": generation.error or "The generation was cancelled.",
    }
