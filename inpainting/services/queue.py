"""Sending a job's task message, by task name: services never import the tasks module (the
tasks call services, so the arrow points one way)."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from ..fleet import GENERIC_QUEUE, model_queue
from ..models import Generation, ModelInstall
from ..progress import QUEUE_PLACES_PUBLISHED, publish, publish_queue_places, status_event
from ..scheduler import generation_in_model_queue, generation_queue_places

logger = logging.getLogger(__name__)
RUN_GENERATION = "inpainting.tasks.run_generation"
DELIVER_WEBHOOK = "inpainting.tasks.deliver_webhook"
INSTALL_MODEL = "inpainting.tasks.install_model"


def generation_queue(generation: Generation) -> str:
    """A job for a library model goes to that model's queue, which only the workers serving
    it consume (named by the model's name now: one renamed since the job was queued is
    served under its new name); every other job to the queue every inference worker
    consumes."""
    if generation_in_model_queue(generation):
        return model_queue(generation.library_model.name)
    return GENERIC_QUEUE


def enqueue(generation: Generation, *, priority: int | None = None) -> None:
    """Send the task message to the job's queue. If the broker is down the job stays queued
    and the reaper sends it again later; a duplicate message is harmless (the claim is
    conditional)."""
    Generation.objects.filter(pk=generation.pk).update(enqueued_at=timezone.now())
    # One reading of the queue's order gives the job its place and the jobs it went ahead of
    # (fair share) theirs. "queued" goes out before the task does: a worker quick to claim the
    # job publishes "running", which must never reach a client before "queued" does. The
    # others' places go out after it: they are not on the way to the job's start.
    places = generation_queue_places(generation=generation, limit=QUEUE_PLACES_PUBLISHED)
    own = next(((at, eta) for job, at, eta in places if job.pk == generation.pk), None)
    publish(generation, status_event(generation, place=own), to_user=True)
    send_turn(generation, priority=priority)
    publish_queue_places(generation, behind=True, places=places)


def send_turn(generation: Generation, *, priority: int | None = None) -> None:
    """One task message for the job's queue: a turn of that queue (``runs.generation_run``
    runs the job whose turn it is, this one or another). If the broker is down the message is
    not sent; a queued job's is sent again by the reaper."""
    try:
        current_app.send_task(
            RUN_GENERATION,
            args=[str(generation.pk)],
            queue=generation_queue(generation),
            priority=settings.CELERY_TASK_DEFAULT_PRIORITY if priority is None else priority,
        )
    except OperationalError as exc:
        logger.warning("generation %s not sent (%s); the reaper resends it", generation.pk, exc)


def send_webhook(generation: Generation) -> None:
    current_app.send_task(DELIVER_WEBHOOK, args=[str(generation.pk)])


def send_install(install: ModelInstall) -> None:
    """A model install goes to the housekeeping worker (the default queue), never to the web
    process; if the broker is down it stays queued (install it again to resend)."""
    try:
        current_app.send_task(INSTALL_MODEL, args=[str(install.pk)])
    except OperationalError as exc:
        logger.warning("model install %s not sent (%s)", install.pk, exc)
