"""Celery tasks: fetch by id, call a service, nothing else."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_process_init

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="inpainting.tasks.run_generation", acks_late=True, reject_on_worker_lost=True)
def run_generation(generation_id: str) -> None:
    services.generation_run(generation_id=generation_id)


@shared_task(bind=True, name="inpainting.tasks.deliver_webhook", acks_late=True, max_retries=None)
def deliver_webhook(self, generation_id: str) -> None:
    from django.conf import settings

    from . import webhooks

    if webhooks.deliver(generation_id=generation_id) == "retry":
        delay = settings.WEBHOOK_BACKOFF_SECONDS * 2**self.request.retries
        raise self.retry(countdown=delay)


@shared_task(name="inpainting.tasks.reap_stuck_generations")
def reap_stuck_generations() -> dict:
    return services.generation_reap()


@worker_process_init.connect
def load_models_once(**kwargs) -> None:
    """Load the diffusion model when the worker process starts, not on the first job."""
    from django.conf import settings

    if not settings.LOAD_SD_INPAINT:
        return
    from .services import diffusion_model_load

    diffusion_model_load()
