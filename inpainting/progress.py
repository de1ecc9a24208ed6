"""From the engine's progress protocol to the database and the channel layer (websockets)."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from .engine import ProgressEvent
from .models import Generation
from .selectors import generation_queue_position

logger = logging.getLogger(__name__)

EVENT_TYPE = "generation.event"  # handled by the consumers' ``generation_event``


def generation_group(generation_id: uuid.UUID | str) -> str:
    return f"generation_{uuid.UUID(str(generation_id)).hex}"


def user_group(user_id: int) -> str:
    return f"user_{user_id}"


def publish(generation: Generation, event: dict[str, Any], *, to_user: bool = False) -> None:
    """Send ``event`` to the generation's subscribers (and the owner's stream if asked)."""
    layer = get_channel_layer()
    message = {"type": EVENT_TYPE, "generation_id": str(generation.pk), "event": event}
    groups = [generation_group(generation.pk)] + (
        [user_group(generation.owner_id)] if to_user else []
    )
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, message)
    except (RedisError, OSError) as exc:
        # Progress is advisory: the database holds the truth and a reconnecting client
        # gets a fresh snapshot. A Redis restart must not fail the job.
        logger.warning("progress for %s not published: %s", generation.pk, exc)


def status_event(generation: Generation) -> dict[str, Any]:
    """The status snapshot: sent on every state change and when a websocket connects."""
    return {
        "type": "status",
        "id": str(generation.pk),
        "status": generation.status,
        "queue_position": generation_queue_position(generation=generation),
        "step": generation.step,
        "total": generation.total_steps,
        "percent": generation.percent,
        "error": generation.error or None,
    }


class GenerationProgress:
    """The progress callback and cancel check a running job hands to the engine."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.started = time.monotonic()

    def __call__(self, event: ProgressEvent) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / event.step * (event.total - event.step) if event.step else None
        Generation.objects.filter(pk=self.generation.pk, status=Generation.Status.RUNNING).update(
            step=event.step, total_steps=event.total
        )
        message = {
            "type": "progress",
            "id": str(self.generation.pk),
            "step": event.step,
            "total": event.total,
            "percent": round(100.0 * event.step / event.total, 1) if event.total else 0.0,
            "eta_seconds": round(eta, 2) if eta is not None else None,
        }
        if event.preview:
            message["preview"] = (
                "data:image/jpeg;base64," + base64.b64encode(event.preview).decode()
            )
        publish(self.generation, message)

    def is_cancelled(self) -> bool:
        return Generation.objects.filter(
            pk=self.generation.pk, status=Generation.Status.CANCELLED
        ).exists()
