"""What each user runs, and how much they may (issue 82): jobs and GPU-seconds over a window,
read from the jobs' own rows (ADR 13: no second counter to keep true), against the quotas
staff set (``models.UsageQuota``).

A job counts from when it is stored (cancelled before it started, it does not); its
GPU-seconds are the engine's measured inference time once it ran, and until then the median
of its engine and model's last finished jobs (a queued job counts when it is enqueued, and
is corrected when it finishes). A job over a quota is refused before it is stored, with
``Retry-After``: when the oldest job counted leaves the window."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from accounts.models import User

from ..errors import ClientError
from ..models import QUOTA_WINDOWS, Generation, UsageQuota, stored_bytes

#: The periods the usage page and ``GET /api/usage`` show, in seconds.
PERIODS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
#: The finished jobs of an engine and model whose median inference time a job not yet run
#: counts for.
ESTIMATE_SAMPLE = 20


@dataclass(frozen=True)
class Used:
    jobs: int
    gpu_seconds: float
    oldest: datetime | None  # the oldest job counted (when the window frees room)


@dataclass(frozen=True)
class Limit:
    """A window's quota as it holds for one user: ``jobs`` and ``gpu_seconds`` (None: no
    limit), and whose it is (``source``: "yours", "the group students")."""

    jobs: int | None
    gpu_seconds: int | None
    source: str


def _counted(user: User, since: datetime):
    """The user's jobs stored since ``since`` that count: all but those cancelled before
    they started."""
    return Generation.objects.filter(owner=user, created_at__gte=since).exclude(
        status=Generation.Status.CANCELLED, started_at__isnull=True
    )


def _estimate(engine: str, model_id: int | None) -> float:
    """What a job of ``engine`` and library model ``model_id`` not yet run counts for: the
    median inference time of their last finished jobs (0 before any ran)."""
    recent = list(
        Generation.objects.filter(
            engine=engine, library_model_id=model_id, inference_seconds__isnull=False
        )
        .order_by("-finished_at")
        .values_list("inference_seconds", flat=True)[:ESTIMATE_SAMPLE]
    )
    return statistics.median(recent) if recent else 0.0


def used(user: User, windows: dict[str, int]) -> dict[str, Used]:
    """``user``'s jobs and GPU-seconds over each of ``windows`` (name: seconds): one query
    for them all, one for the jobs not yet run (at most a user's active jobs), and one for
    each engine and model of those."""
    now = timezone.now()
    starts = {name: now - timedelta(seconds=seconds) for name, seconds in windows.items()}
    rows = _counted(user, min(starts.values()))
    aggregates = {}
    for name, since in starts.items():
        inside = Q(created_at__gte=since)
        aggregates[f"{name}_jobs"] = Count("pk", filter=inside)
        aggregates[f"{name}_measured"] = Sum("inference_seconds", filter=inside)
        aggregates[f"{name}_oldest"] = Min("created_at", filter=inside)
    totals = rows.aggregate(**aggregates)
    waiting = list(
        rows.filter(inference_seconds__isnull=True, status__in=Generation.ACTIVE).values_list(
            "engine", "library_model_id", "created_at"
        )
    )
    estimates = {key: _estimate(*key) for key in {(engine, model) for engine, model, _ in waiting}}
    answer = {}
    for name, since in starts.items():
        estimated = sum(estimates[(e, m)] for e, m, made in waiting if made >= since)
        answer[name] = Used(
            totals[f"{name}_jobs"],
            (totals[f"{name}_measured"] or 0.0) + estimated,
            totals[f"{name}_oldest"],
        )
    return answer


def limits_of(user: User) -> dict[str, Limit]:
    """The quota of each window that holds for ``user``: their own, else the most generous
    of their groups' (a limit left empty is none), else none; staff only by their own."""
    rows = UsageQuota.objects.filter(Q(user=user) | Q(group__user=user)).select_related("group")
    quotas = list(rows.distinct())  # one query, however many groups
    own = {q.window: q for q in quotas if q.user_id == user.pk}
    groups = [] if user.is_staff else [q for q in quotas if q.group_id is not None]
    limits = {}
    for window in QUOTA_WINDOWS:
        if window in own:
            mine = own[window]
            limits[window] = Limit(mine.jobs, mine.gpu_seconds, "yours")
            continue
        theirs = [q for q in groups if q.window == window]
        if not theirs:
            continue

        def most(values: list[int | None]) -> int | None:
            return None if any(v is None for v in values) else max(values)

        jobs = most([q.jobs for q in theirs])
        gpu = most([q.gpu_seconds for q in theirs])
        names = ", ".join(sorted(q.group.name for q in theirs))
        limits[window] = Limit(jobs, gpu, f"the group{'s' if len(theirs) > 1 else ''} {names}")
    return limits


def _per(window: str) -> str:
    return "an hour" if window == "hour" else f"a {window}"


def usage_quota_check(user: User) -> None:
    """Refuse a new job of ``user`` that a quota of theirs has no room for: a 429 whose
    ``Retry-After`` says when the oldest job counted leaves the window, and whose message
    names the window and the limit. One reading of the quotas; with one, of the user's jobs
    (``used``)."""
    limits = {
        window: limit
        for window, limit in limits_of(user).items()
        if limit.jobs is not None or limit.gpu_seconds is not None
    }
    if not limits:
        return
    figures = used(user, {window: QUOTA_WINDOWS[window] for window in limits})
    for window, limit in limits.items():
        seconds, now = QUOTA_WINDOWS[window], figures[window]
        over = []
        if limit.jobs is not None and now.jobs >= limit.jobs:
            over.append(f"{now.jobs} jobs of your {limit.jobs}")
        if limit.gpu_seconds is not None and now.gpu_seconds >= limit.gpu_seconds:
            over.append(f"{now.gpu_seconds:.0f} GPU-seconds of your {limit.gpu_seconds}")
        if not over:
            continue
        if now.oldest is None:  # a limit of 0: no job will leave the window to free room
            raise ClientError(
                f"Your limit {_per(window)} is 0 ({limit.source}): you may run no jobs here. "
                "Ask the server's staff.",
                status=403,
            )
        frees = (now.oldest + timedelta(seconds=seconds) - timezone.now()).total_seconds()
        wait = max(1, math.ceil(frees))
        raise ClientError(
            f"You have used {' and '.join(over)} {_per(window)} (the limit is {limit.source}); "
            f"the next job fits in {_duration(wait)} (Retry-After). GET /api/usage shows "
            "your figures.",
            status=429,
            retry_after=wait,
        )


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def usage_summary(user: User) -> dict:
    """What ``GET /api/usage`` and the usage page show: the user's jobs and GPU-seconds over
    the last hour, day, week and month, the bytes their pictures take, and their limits."""
    figures = used(user, PERIODS)
    periods = {
        name: {"jobs": now.jobs, "gpu_seconds": round(now.gpu_seconds, 3)}
        for name, now in figures.items()
    }
    limits = limits_of(user)
    return {
        "username": user.get_username(),
        "usage": periods,
        "stored_bytes": stored_bytes(user_id=user.pk),
        "limits": {
            window: (
                {"jobs": limit.jobs, "gpu_seconds": limit.gpu_seconds, "source": limit.source}
                if (limit := limits.get(window))
                else {"jobs": None, "gpu_seconds": None, "source": None}
            )
            for window in QUOTA_WINDOWS
        },
        "storage_bytes_limit": settings.STORAGE_QUOTA_BYTES_PER_USER or None,
        "active_jobs_limit": settings.MAX_ACTIVE_GENERATIONS_PER_USER,
    }
