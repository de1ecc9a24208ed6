"""The final JSON a webhook carries: the same shape the job's own API answers with."""

from __future__ import annotations

from django.conf import settings

from ..models import Generation
from . import fooocus, modelslab, native


def _modelslab(generation: Generation, base: str) -> dict:
    body = modelslab.answer_body(base, generation, as_base64=False)
    body["track_id"] = (generation.metadata.get("modelslab") or {}).get("track_id")
    return body


#: The webhook body of a job submitted through a compatible API whose clients read their own
#: shape (its ``Generation.client``); every other job's is the native answer's.
BODIES = {
    Generation.Client.MODELSLAB: _modelslab,
    Generation.Client.FOOOCUS: fooocus.task_record,
}


def payload_for(generation: Generation) -> dict:
    base = settings.PUBLIC_BASE_URL
    if generation.client in BODIES:
        return BODIES[generation.client](generation, base)
    if generation.status == Generation.Status.SUCCEEDED:
        return native.img2img_success(generation, base)
    return {
        "status": "error" if generation.status == Generation.Status.FAILED else "cancelled",
        "id": str(generation.pk),
        "message": generation.error or "The generation was cancelled.",
    }
