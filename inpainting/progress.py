"""From the engine's progress protocol to the database and the channel layer (websockets)."""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import os
import threading
import time
import uuid
from typing import Any

from channels.layers import get_channel_layer
from django.core.cache import cache
from redis.exceptions import RedisError

from .engine import ProgressEvent
from .models import Generation
from .scheduler import generation_queue_place, generation_queue_places

logger = logging.getLogger(__name__)

EVENT_TYPE = "generation.event"  # handled by the consumers' ``generation_event``


class Event(enum.StrEnum):
    """The ``type`` of every message a websocket client (and a waiting request) receives.
    The studio's and the history page's scripts handle these names; a test compares them."""

    STATUS = "status"  # a snapshot: on connect and on every state change
    PROGRESS = "progress"  # one per step
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"
    INSTALL = "install"  # a model install's progress (to the user who asked for it)


#: After one of these, nothing more comes for that generation.
TERMINAL_EVENTS = frozenset({Event.COMPLETED, Event.FAILED, Event.CANCELLED, Event.DELETED})


def generation_group(generation_id: uuid.UUID | str) -> str:
    return f"generation_{uuid.UUID(str(generation_id)).hex}"


def user_group(user_id: int) -> str:
    return f"user_{user_id}"


#: How long a publish may wait for Redis before the event is dropped (and logged).
PUBLISH_TIMEOUT_SECONDS = 10.0

_publisher_lock = threading.Lock()
_publisher: tuple[int, asyncio.AbstractEventLoop] | None = None


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for publishing, running in a daemon thread of its own.

    ``async_to_sync`` outside a running loop makes a new loop for every call, and
    channels-redis keeps its connections per loop, so each event opened and closed a Redis
    connection (a worker sends five per job, more with progress steps). One long-lived loop keeps
    them pooled. A forked child (a Celery pool process) starts its own.
    """
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="event-publisher", daemon=True).start()
            _publisher = (os.getpid(), loop)
        return _publisher[1]


async def _group_send(sends: list[tuple[list[str], dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    for groups, message in sends:
        for group in groups:
            await layer.group_send(group, message)


def publish(generation: Generation, event: dict[str, Any], *, to_user: bool = False) -> None:
    """Send ``event`` to the generation's subscribers (and the owner's stream if asked)."""
    groups = [generation_group(generation.pk)] + (
        [user_group(generation.owner_id)] if to_user else []
    )
    _send([(groups, _message(generation, event))], str(generation.pk))


def _message(generation: Generation, event: dict[str, Any]) -> dict[str, Any]:
    return {"type": EVENT_TYPE, "generation_id": str(generation.pk), "event": event}


def publish_to_user(user_id: int, event: dict[str, Any]) -> None:
    """Send ``event`` (not a generation's: a model install's) to the user's stream."""
    _send([([user_group(user_id)], {"type": EVENT_TYPE, "event": event})], f"user {user_id}")


def _send(sends: list[tuple[list[str], dict[str, Any]]], about: str) -> None:
    """Send each message to its groups, all within one PUBLISH_TIMEOUT_SECONDS."""
    sent = asyncio.run_coroutine_threadsafe(_group_send(sends), _publisher_loop())
    try:
        sent.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        # Progress is advisory: the database holds the truth and a reconnecting client
        # gets a fresh snapshot. A Redis restart must not fail the job.
        sent.cancel()
        logger.warning("progress for %s not published: %r", about, exc)


def status_event(
    generation: Generation, *, place: tuple[int | None, float | None] | None = None
) -> dict[str, Any]:
    """The status snapshot: sent on every state change, when a websocket connects, and to
    the waiting jobs of a queue whose order changed (``publish_queue_places``, which gives
    each its ``place``, ``(queue_position, eta_seconds)``, from one reading of the order)."""
    position, eta = place if place is not None else generation_queue_place(generation=generation)
    return {
        "type": Event.STATUS,
        "id": str(generation.pk),
        "status": generation.status,
        "queue_position": position,
        "eta_seconds": eta,
        "step": generation.step,
        "total": generation.total_steps,
        "percent": generation.percent,
        "error": generation.error or None,
    }


#: The most waiting jobs of a queue told their new place when its order changes: the first
#: ones in the order. Bounds the work of one change (one reading of the order, at most this
#: many events) however long the queue; a job further back is told once it moves up among them
#: (or when its socket connects, which always sends its place).
QUEUE_PLACES_PUBLISHED = 50


def publish_queue_places(
    generation: Generation, *, behind: bool = False, places: list | None = None
) -> set[uuid.UUID]:
    """After the order of ``generation``'s queue changed (a job of it was claimed, expired,
    was cancelled or moved), send the first QUEUE_PLACES_PUBLISHED waiting jobs of that queue a
    fresh status event with their new ``queue_position`` and ``eta_seconds``, all from one
    reading of the order; ``behind``: only those after ``generation`` (a new job that went
    ahead of them; nobody when it is last). To each job's own subscribers only: a new place is
    not a status change, which the owner's stream (the history page's badges) is about. A job
    claimed since the reading is left out (its "running" must not be followed by an old
    "queued"). ``places``: that reading (``scheduler.generation_queue_places``) when the caller
    made it already. The ids of the jobs told."""
    if places is None:
        places = generation_queue_places(generation=generation, limit=QUEUE_PLACES_PUBLISHED)
    if behind:
        ids = [job.pk for job, _, _ in places]
        places = places[ids.index(generation.pk) + 1 :] if generation.pk in ids else []
    waiting = set(
        Generation.objects.filter(
            pk__in=[job.pk for job, _, _ in places], status=Generation.Status.QUEUED
        ).values_list("pk", flat=True)
    )
    sends = [
        ([generation_group(job.pk)], _message(job, status_event(job, place=(position, eta))))
        for job, position, eta in places
        if job.pk in waiting
    ]
    if sends:
        _send(sends, f"the queue of {generation.pk}")
    return waiting


#: How long a job's latest preview is kept for pollers (AUTOMATIC1111's /sdapi/v1/progress).
PREVIEW_SECONDS = 600


def _preview_key(generation_id: uuid.UUID | str) -> str:
    return f"dreamlayer:preview:{uuid.UUID(str(generation_id)).hex}"


def latest_preview(generation_id: uuid.UUID | str) -> bytes | None:
    """The running job's latest live preview (a small JPEG), or None (none yet, or Redis is
    down: a preview is advisory)."""
    try:
        return cache.get(_preview_key(generation_id))
    except (RedisError, OSError):
        return None


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
            "type": Event.PROGRESS,
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
            try:  # for clients that poll instead of listening
                cache.set(_preview_key(self.generation.pk), event.preview, PREVIEW_SECONDS)
            except (RedisError, OSError) as exc:
                logger.warning("preview for %s not kept: %r", self.generation.pk, exc)
        publish(self.generation, message)

    def is_cancelled(self) -> bool:
        """Stop unless the job is still running: cancelled, or deleted while it ran."""
        return not Generation.objects.filter(
            pk=self.generation.pk, status=Generation.Status.RUNNING
        ).exists()
