"""Retention (issue 52): jobs that ended more than RETENTION_DAYS ago are deleted with their
files, as a person deleting them would (``generations.generation_delete``: outputs, derived
pictures, and inputs no other job uses). Off by default (0); Celery beat runs it every
RETENTION_EVERY_SECONDS on the housekeeping worker."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ..models import Generation
from .generations import generation_delete

#: Jobs one run deletes at most (the next run goes on): a run stays short.
BATCH = 500


def retention_run(*, now: datetime | None = None) -> dict:
    """Delete up to BATCH jobs that ended before ``now`` minus RETENTION_DAYS; what it did."""
    days = settings.RETENTION_DAYS
    if not days:
        return {"deleted": 0, "retention_days": 0}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = Generation.objects.filter(
        status__in=Generation.TERMINAL, finished_at__lt=cutoff
    ).order_by("finished_at")[:BATCH]
    deleted = 0
    for generation in old:
        generation_delete(generation=generation)
        deleted += 1
    return {"deleted": deleted, "retention_days": days}
