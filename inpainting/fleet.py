"""The workers of a deployment as the web side sees them: which Celery queue runs a job, and
what each live worker last reported (the library models it serves, the pipelines it holds
now). Reports live in one Redis hash, one field per worker process, each with the time it
was written; a report older than ``WORKER_REPORT_TIMEOUT_SECONDS`` is a worker that is gone."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import Any

import redis
from django.conf import settings

from dreamlayer_site.redis_pool import SharedConnectionPool

logger = logging.getLogger(__name__)

#: The queue of every job that is not for a library model (classical, lama, and diffusers
#: with the deployment's own SD_INPAINT_MODEL): every inference worker consumes it.
GENERIC_QUEUE = "inference"
REPORTS_KEY = "dreamlayer:workers"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def model_queue(name: str) -> str:
    """The Celery queue of library model ``name``: readable, and distinct for distinct names
    (a short hash is added when the name had to be changed to be a safe queue name)."""
    safe = _UNSAFE.sub("_", name)
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{GENERIC_QUEUE}.model.{safe}"


def _redis() -> redis.Redis:
    return redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))


def report_write(key: str, report: dict[str, Any]) -> None:
    """Record what worker process ``key`` (``hostname:pid``) serves and holds now."""
    _redis().hset(REPORTS_KEY, key, json.dumps({**report, "reported_at": time.time()}))


def report_remove(key: str) -> None:
    _redis().hdel(REPORTS_KEY, key)


def reports_live() -> list[dict[str, Any]]:
    """The reports of the workers alive now (reported within WORKER_REPORT_TIMEOUT_SECONDS),
    with their age in seconds; reports of workers gone longer than that are dropped."""
    client = _redis()
    now = time.time()
    live, stale = [], []
    for key, raw in sorted(client.hgetall(REPORTS_KEY).items()):
        try:
            report = json.loads(raw)
            age = now - float(report["reported_at"])
        except (ValueError, KeyError, TypeError):
            stale.append(key)
            continue
        if age > settings.WORKER_REPORT_TIMEOUT_SECONDS:
            stale.append(key)
            continue
        report["age_seconds"] = round(max(age, 0.0), 1)
        live.append(report)
    if stale:
        client.hdel(REPORTS_KEY, *stale)
    return live


def models_served() -> dict[str, list[str]] | None:
    """Each library model that live workers serve, with their names; None when Redis cannot
    be read (nobody can tell which workers run)."""
    try:
        reports = reports_live()
    except (redis.RedisError, OSError) as exc:
        logger.warning("worker reports could not be read: %s", exc)
        return None
    served: dict[str, set[str]] = {}
    for report in reports:
        for model in report.get("models", []):
            served.setdefault(model, set()).add(report["worker"])
    return {model: sorted(workers) for model, workers in served.items()}


def workers_serving(model: str) -> list[str] | None:
    """The names of the live workers that serve library model ``model`` (None: unknown)."""
    served = models_served()
    return None if served is None else served.get(model, [])


def fleet_summary(*, names: bool = True) -> list[dict[str, Any]] | None:
    """The live workers for ``engine_info`` (and, without their names and process ids, for
    the anonymous ``/api/health``): the library models each serves, the ones it holds loaded
    and the bytes their weights hold; None when Redis cannot be read (a health check must
    still answer)."""
    try:
        reports = reports_live()
    except (redis.RedisError, OSError) as exc:
        logger.warning("worker reports could not be read: %s", exc)
        return None
    keys = ("worker", "pid") if names else ()
    keys += ("models", "loaded", "memory", "device", "gpu_memory", "age_seconds")
    return [{key: report.get(key) for key in keys} for report in reports]
