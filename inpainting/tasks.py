"""Celery tasks: fetch by id, call a service, nothing else. Services send these by name
(``services.queue``), so this module is the only one that imports both."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings

from .services import installs, models, reaper, retention, runs, selection, webhooks


@shared_task(
    bind=True,
    name="inpainting.tasks.run_generation",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
)
def run_generation(self, generation_id: str) -> None:
    """Run a turn of the queue the message came from (its routing key: the queue's name),
    even when its job was deleted. A message that finds its job running elsewhere (Celery
    redelivers the message of a killed worker within seconds, before its heartbeat is stale)
    looks again once the heartbeat would be stale: then the job is taken over, or it has
    finished meanwhile."""
    outcome = runs.generation_run(
        generation_id=generation_id,
        worker=self.request.hostname,
        queue=(self.request.delivery_info or {}).get("routing_key"),
    )
    if outcome is runs.RunOutcome.HELD:
        raise self.retry(
            countdown=settings.HEARTBEAT_TIMEOUT_SECONDS + 1, priority=settings.TAKEOVER_PRIORITY
        )


@shared_task(bind=True, name="inpainting.tasks.deliver_webhook", acks_late=True, max_retries=None)
def deliver_webhook(self, generation_id: str) -> None:
    if webhooks.deliver(generation_id=generation_id) is webhooks.Attempt.RETRY:
        delay = settings.WEBHOOK_BACKOFF_SECONDS * 2**self.request.retries
        raise self.retry(countdown=delay)


@shared_task(name="inpainting.tasks.run_selection", acks_late=False, ignore_result=True)
def run_selection(request: dict) -> None:
    """A selection (SAM, a background model) for a web process that waits for its answer;
    a message lost with its worker is not run again (the web process stops waiting)."""
    selection.selection_run(request)


@shared_task(
    name="inpainting.tasks.install_model", acks_late=False, time_limit=None, soft_time_limit=None
)
def install_model(install_id: str) -> None:
    """A model install (hours for a large model on a slow line: no time limit; a message lost
    with its worker leaves the install running: cancel it and install again, it resumes)."""
    installs.install_run(install_id=install_id)


@shared_task(name="inpainting.tasks.reap_stuck_generations")
def reap_stuck_generations() -> dict:
    return reaper.generation_reap()


@shared_task(name="inpainting.tasks.delete_expired_generations")
def delete_expired_generations() -> dict:
    return retention.retention_run()


@worker_process_init.connect
def start_reporting(sender: str, **kwargs) -> None:
    """A worker process (``sender`` is its worker's name) consumes the queues of the library
    models it serves, loads its models and reports to the fleet, from a thread of its own."""
    models.worker_reporter_start(sender)


@worker_process_shutdown.connect
def stop_reporting(**kwargs) -> None:
    models.worker_reporter_stop()
