"""Recovering jobs whose worker or message was lost (Celery beat runs it every
``REAP_EVERY_SECONDS``, on the housekeeping worker)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Generation
from .queue import enqueue
from .runs import generation_expire, generation_fail, orphaned

#: A key in the broker's Redis (the cache lives on the same server): when the reaper finds it
#: missing, Redis lost its data (a restart without persistence) and every queued job's
#: message with it, so they are all sent again at once instead of after
#: REAP_QUEUED_AFTER_SECONDS.
BROKER_MARKER = "dreamlayer:broker-marker"


def _broker_lost_its_data() -> bool:
    try:
        return bool(cache.add(BROKER_MARKER, timezone.now().isoformat(), timeout=None))
    except Exception:  # noqa: BLE001 - Redis down: the next run looks again
        return False


def generation_reap() -> dict[str, int]:
    """Recover jobs whose worker or message was lost (Celery beat runs this every
    REAP_EVERY_SECONDS). Running jobs without a heartbeat for HEARTBEAT_TIMEOUT_SECONDS are
    requeued, or failed once they used ``MAX_GENERATION_ATTEMPTS``; queued jobs get their
    message again when Redis lost its data, or when their message is older than
    ``REAP_QUEUED_AFTER_SECONDS``; queued jobs past their ``max_queue_seconds`` fail with the
    reason (counted as failed), as a worker's turn of their queue would fail them: a queue
    with no worker free, or none at all, does not keep them waiting past it. Each change is
    conditional, so two reapers (or a reaper and a redelivered message) never act twice on
    one job."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    now = timezone.now()
    limited = Generation.objects.filter(
        status=Generation.Status.QUEUED, max_queue_seconds__isnull=False
    )
    for generation in limited:
        waited = (now - generation.created_at).total_seconds()
        if waited > generation.max_queue_seconds and generation_expire(generation=generation):
            counts["failed"] += 1
    queued = Generation.objects.filter(status=Generation.Status.QUEUED)
    if not _broker_lost_its_data():
        lost_cutoff = timezone.now() - timedelta(seconds=settings.REAP_QUEUED_AFTER_SECONDS)
        queued = queued.filter(
            Q(enqueued_at__lt=lost_cutoff) | Q(enqueued_at__isnull=True, created_at__lt=lost_cutoff)
        )
    for generation in queued:
        counts["resent"] += 1
        enqueue(generation)
    for generation in Generation.objects.filter(orphaned()):
        if generation.attempts >= settings.MAX_GENERATION_ATTEMPTS:
            message = (
                f"The worker stopped during this job {generation.attempts} times; "
                "it was not retried again."
            )
            if generation_fail(generation=generation, message=message):
                counts["failed"] += 1
            continue
        with transaction.atomic():
            requeued = Generation.objects.filter(
                pk=generation.pk,
                status=Generation.Status.RUNNING,
                attempt_token=generation.attempt_token,
            ).update(status=Generation.Status.QUEUED, started_at=None, heartbeat_at=None, step=0)
            if requeued:
                counts["requeued"] += 1
                transaction.on_commit(
                    lambda g=generation: enqueue(g, priority=settings.TAKEOVER_PRIORITY)
                )
    return counts
