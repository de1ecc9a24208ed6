"""Prometheus metrics of the whole deployment, read at scrape time: every web process and
worker writes its counters to Redis (HTTP requests, model loads) and the jobs are rows of the
database, so one scrape of any web process sees the whole cluster (docs/scaling-out.md, "Metrics").

The exposition format is prometheus-client's; the values come from one database query per
family, the workers' reports (``fleet``) and a few Redis hashes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils.decorators import sync_and_async_middleware
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import generate_latest

from dreamlayer_site.redis_pool import SharedConnectionPool

from . import fleet
from .gate import ANSWERS, PIXELS
from .models import Generation, LibraryModel, stored_bytes

logger = logging.getLogger(__name__)

HTTP_KEY = "dreamlayer:metrics:http"
MODEL_LOADS_KEY = "dreamlayer:metrics:model-loads"
#: Seconds: HTTP latencies, and job durations and queue waits.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: kombu's Redis transport keeps a queue's messages in one list per priority step.
_PRIORITY_STEPS = (0, 3, 6, 9)


def _redis() -> redis.Redis:
    return redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))


#: HTTP methods counted by name; any other (a client may send any token as its method) is
#: counted as ``other``, so a stranger cannot add fields to the counters.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _label(value: str) -> str:
    """A label value kept in a ``|``-separated field: the separator cannot occur in it."""
    return value.replace("|", "_")


def _bucket(value: float, buckets: tuple[float, ...]) -> str:
    return next((str(b) for b in buckets if value <= b), "+Inf")


def http_request_record(*, method: str, view: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its latency, in Redis (one round trip); a Redis that is down
    costs the request nothing but this record."""
    pipe = _redis().pipeline(transaction=False)
    method = method if method in HTTP_METHODS else "other"
    pipe.hincrby(HTTP_KEY, f"count|{method}|{_label(view)}|{int(status)}", 1)
    pipe.hincrby(HTTP_KEY, f"bucket|{_bucket(seconds, HTTP_BUCKETS)}", 1)
    pipe.hincrbyfloat(HTTP_KEY, "sum", seconds)
    try:
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.debug("HTTP metrics not recorded: %s", exc)


def model_load_record(*, model: str, seconds: float) -> None:
    """Count one model load (a worker had to load a pipeline) and how long it took."""
    pipe = _redis().pipeline(transaction=False)
    pipe.hincrby(MODEL_LOADS_KEY, f"count|{_label(model)}", 1)
    pipe.hincrbyfloat(MODEL_LOADS_KEY, f"seconds|{_label(model)}", seconds)
    try:
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("model load metric not recorded: %s", exc)


def _histogram(name: str, doc: str, values: dict[str, Any], buckets: tuple[float, ...]):
    """A histogram from per-bucket counts (not cumulative) and a sum."""
    family = HistogramMetricFamily(name, doc)
    running, cumulative = 0, []
    for bound in [*map(str, buckets), "+Inf"]:
        running += int(values.get(bound, 0) or 0)
        cumulative.append((bound, running))
    family.add_metric([], cumulative, float(values.get("sum") or 0.0))
    return family


def _job_histogram(name: str, doc: str, field: str):
    """A histogram of a duration field of the finished jobs, counted by the database."""
    bounds = [*JOB_BUCKETS, None]
    aggregates: dict[str, Any] = {}
    low = None
    for bound in bounds:
        condition = Q(**{f"{field}__isnull": False})
        if low is not None:
            condition &= Q(**{f"{field}__gt": low})
        if bound is not None:
            condition &= Q(**{f"{field}__lte": bound})
        aggregates[str(bound) if bound is not None else "+Inf"] = Count("pk", filter=condition)
        low = bound
    finished = Generation.objects.filter(status__in=Generation.TERMINAL)
    counts = finished.aggregate(**aggregates, sum=Sum(field))  # one query, summed in the database
    return _histogram(name, doc, counts, JOB_BUCKETS)


class DeploymentCollector:
    """Every DreamLayer metric, computed when Prometheus scrapes."""

    def collect(self) -> Iterator:
        jobs = GaugeMetricFamily(
            "dreamlayer_generations",
            "Generations by status and engine.",
            labels=["status", "engine"],
        )
        rows = Generation.objects.values("status", "engine").annotate(n=Count("pk"))
        for row in rows.order_by("status", "engine"):
            jobs.add_metric([row["status"], row["engine"]], row["n"])
        yield jobs

        storage = GaugeMetricFamily(
            "dreamlayer_stored_bytes",
            "Bytes of pictures in storage: inputs, masks, outputs, derived pictures.",
        )
        storage.add_metric([], stored_bytes())
        yield storage

        webhooks = GaugeMetricFamily(
            "dreamlayer_webhook_deliveries", "Webhook deliveries by outcome.", labels=["status"]
        )
        rows = Generation.objects.exclude(webhook_status="").values("webhook_status")
        for row in rows.annotate(n=Count("pk")).order_by("webhook_status"):
            webhooks.add_metric([row["webhook_status"]], row["n"])
        yield webhooks

        yield from self._by_group()
        yield _job_histogram(
            "dreamlayer_job_duration_seconds",
            "Inference time of finished jobs.",
            "inference_seconds",
        )
        yield _job_histogram(
            "dreamlayer_queue_wait_seconds",
            "Time finished jobs waited in the queue.",
            "queue_seconds",
        )
        yield from self._redis_metrics()
        yield from self._web_budget()

    @staticmethod
    def _by_group() -> Iterator:
        """The stored jobs and their GPU-seconds by their owner's group (issue 82): by group,
        not by user, so the series stay few. A user in two groups counts in each; ``none``:
        in none. Read from the jobs' rows (ADR 13), so they fall when jobs are deleted."""
        jobs = GaugeMetricFamily(
            "dreamlayer_group_generations",
            "Generations stored, by their owner's group.",
            labels=["group"],
        )
        seconds = GaugeMetricFamily(
            "dreamlayer_group_gpu_seconds",
            "Inference seconds of the generations stored, by their owner's group.",
            labels=["group"],
        )
        rows = Generation.objects.values("owner__groups__name").annotate(
            n=Count("pk"), gpu=Sum("inference_seconds")
        )
        for row in rows.order_by("owner__groups__name"):
            group = _label(row["owner__groups__name"] or "none")
            jobs.add_metric([group], row["n"])
            seconds.add_metric([group], row["gpu"] or 0.0)
        yield jobs
        yield seconds

    @staticmethod
    def _web_budget() -> Iterator:
        """The web budget of the process that answers the scrape (``gate``): the pixels its
        tickets hold, and the bytes of answers on their way out."""
        pixels = GaugeMetricFamily(
            "dreamlayer_web_pixels_held", "Pixels the gate's tickets hold in this web process."
        )
        pixels.add_metric([], PIXELS.in_use()[0])
        yield pixels
        answers = GaugeMetricFamily(
            "dreamlayer_web_answer_bytes_held",
            "Bytes of answers made in this web process and on their way out.",
        )
        answers.add_metric([], ANSWERS.in_use())
        yield answers

    def _redis_metrics(self) -> Iterator:
        try:
            client = _redis()
            http = client.hgetall(HTTP_KEY)
            loads = client.hgetall(MODEL_LOADS_KEY)
            depths = self._queue_depths(client)
        except (redis.RedisError, OSError) as exc:
            logger.warning("metrics from Redis could not be read: %s", exc)
            return
        queue = GaugeMetricFamily(
            "dreamlayer_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for name, depth in sorted(depths.items()):
            queue.add_metric([name], depth)
        yield queue

        requests = CounterMetricFamily(
            "dreamlayer_http_requests",
            "HTTP requests by method, view and status, over every web process.",
            labels=["method", "view", "status"],
        )
        buckets: dict[str, Any] = {}
        for field, value in sorted(http.items()):
            field = field.decode()
            if field.startswith("count|"):
                _, method, view, status = field.split("|", 3)
                requests.add_metric([method, view, status], int(value))
            elif field.startswith("bucket|"):
                buckets[field.removeprefix("bucket|")] = int(value)
            elif field == "sum":
                buckets["sum"] = float(value)
        yield requests
        yield _histogram(
            "dreamlayer_http_request_duration_seconds",
            "HTTP request latency, over every web process.",
            buckets,
            HTTP_BUCKETS,
        )

        loads = {k.decode(): v for k, v in loads.items()}
        count = CounterMetricFamily(
            "dreamlayer_model_loads", "Diffusion pipelines loaded by workers.", labels=["model"]
        )
        seconds = CounterMetricFamily(
            "dreamlayer_model_load_seconds", "Time workers spent loading them.", labels=["model"]
        )
        for field, value in sorted(loads.items()):
            kind, _, model = field.partition("|")
            (count if kind == "count" else seconds).add_metric([model], float(value))
        yield count
        yield seconds
        yield from self._worker_metrics()

    @staticmethod
    def _queue_depths(client: redis.Redis) -> dict[str, int]:
        names = [fleet.GENERIC_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE]
        names += [
            fleet.model_queue(n)
            for n in LibraryModel.objects.checkpoints().values_list("name", flat=True)
        ]
        pipe = client.pipeline(transaction=False)
        for name in names:
            for step in _PRIORITY_STEPS:
                pipe.llen(name if not step else f"{name}\x06\x16{step}")
        lengths = pipe.execute()
        steps = len(_PRIORITY_STEPS)
        return {name: sum(lengths[i * steps : (i + 1) * steps]) for i, name in enumerate(names)}

    @staticmethod
    def _worker_metrics() -> Iterator:
        reports = fleet.fleet_summary() or []
        alive = GaugeMetricFamily("dreamlayer_workers_alive", "Worker processes reporting now.")
        alive.add_metric([], len(reports))
        yield alive
        serving = GaugeMetricFamily(
            "dreamlayer_model_workers", "Live workers serving each model.", labels=["model"]
        )
        loaded = GaugeMetricFamily(
            "dreamlayer_model_loaded",
            "Live workers holding each model in memory.",
            labels=["model"],
        )
        for family, key in ((serving, "models"), (loaded, "loaded")):
            counts: dict[str, int] = {}
            for report in reports:
                for model in report.get(key) or []:
                    counts[model] = counts.get(model, 0) + 1
            for model, n in sorted(counts.items()):
                family.add_metric([model], n)
        yield serving
        yield loaded


def metrics_text() -> bytes:
    """The Prometheus text exposition of ``DeploymentCollector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector())
    return generate_latest(registry)


def _record_request(request, response, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    http_request_record(
        method=request.method,
        view=(match.view_name if match else "unmatched") or "unnamed",
        status=response.status_code,
        seconds=seconds,
    )


@sync_and_async_middleware
def http_metrics_middleware(get_response):
    """Counts every request (method, the view it reached, status) and its latency. Under ASGI
    the Redis write runs in the thread pool after the answer is ready, off the request's
    path."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            started = time.perf_counter()
            response = await get_response(request)
            seconds = time.perf_counter() - started
            loop = asyncio.get_running_loop()
            loop.run_in_executor(None, _record_request, request, response, seconds)
            return response

    else:

        def middleware(request):
            started = time.perf_counter()
            response = get_response(request)
            _record_request(request, response, time.perf_counter() - started)
            return response

    return middleware
