"""The worker side of a job: claim it with a new attempt token, run the engine with a
heartbeat, progress and cancel, and record the outcome once (only the current token can)."""

from __future__ import annotations

import enum
import json
import logging
import threading
import uuid
from dataclasses import replace
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from .. import engine, scheduler, selectors
from ..fleet import GENERIC_QUEUE, model_queue
from ..models import GeneratedImage, Generation, LibraryModel
from ..params import GenerationParams
from ..progress import Event, GenerationProgress, publish, publish_queue_places, status_event
from . import webhooks
from .additions import planned_uses
from .files import generation_request, thumbnail_made_with
from .models import backend_for
from .queue import send_turn
from .splits import split_job_run
from .upscale import upscale_job_run

logger = logging.getLogger(__name__)


def _takeable() -> Q:
    """Jobs a worker may claim: queued ones, and running ones whose worker is provably gone
    (no heartbeat for HEARTBEAT_TIMEOUT_SECONDS) while attempts remain."""
    return Q(status=Generation.Status.QUEUED) | (
        orphaned() & Q(attempts__lt=settings.MAX_GENERATION_ATTEMPTS)
    )


def orphaned() -> Q:
    """Running jobs whose worker is provably gone: no heartbeat for HEARTBEAT_TIMEOUT_SECONDS
    (a job claimed before heartbeats existed: started that long ago)."""
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    return Q(status=Generation.Status.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )


def generation_claim(*, generation_id: str, worker: str = "") -> Generation | None:
    """Take the job for ``worker`` (recorded on the job) with a new attempt token; None when
    it is not takeable (finished, or running on a live worker). Only the token's holder
    records the outcome."""
    now = timezone.now()
    claimed = Generation.objects.filter(_takeable(), pk=generation_id).update(
        status=Generation.Status.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        attempt_token=uuid.uuid4().hex,
        attempts=F("attempts") + 1,
        step=0,
    )
    if not claimed:
        return None
    generation = Generation.objects.select_related("source", "mask").get(pk=generation_id)
    generation.queue_seconds = (now - generation.created_at).total_seconds()
    Generation.objects.filter(pk=generation.pk).update(queue_seconds=generation.queue_seconds)
    publish(generation, status_event(generation), to_user=True)
    return generation


def generation_expire(*, generation: Generation, tell_queue: bool = True) -> bool:
    """Fail a queued job that waited longer than its ``max_queue_seconds``, with the reason;
    the jobs behind it are told their new place (``tell_queue=False``: a claim that follows at
    once tells them)."""
    waited = (timezone.now() - generation.created_at).total_seconds()
    message = (
        f"The job waited {waited:.0f} s in the queue, longer than its max_queue_seconds "
        f"({generation.max_queue_seconds:g}); it was not run. Send it again later, or with a "
        "longer limit."
    )
    expired = generation_fail(generation=generation, message=message, only_queued=True)
    if expired and tell_queue:
        publish_queue_places(generation)
    return expired


def _named_queue_order(queue: str) -> list[Generation]:
    """The fair-share order of the queue named ``queue`` (a message's routing key): the queue
    every inference worker consumes, or a library model's (``fleet.model_queue``); empty for
    any other name (a model no longer in the library has no queue to take a turn of)."""
    if queue == GENERIC_QUEUE:
        return scheduler.generation_queue_of_model(model_id=None)
    for pk, name in LibraryModel.objects.checkpoints().values_list("pk", "name"):
        if model_queue(name) == queue:
            return scheduler.generation_queue_of_model(model_id=pk)
    return []


def _claim_fair_turn(generation_id: str, worker: str, queue: str | None) -> Generation | None:
    """The job this message's turn runs: its own when it is running on a worker that is
    gone (a redelivered message takes it over); otherwise the first queued job of its queue
    in fair-share order (jobs past their ``max_queue_seconds`` failed on the way); None when
    its queue has none (its own job may be running elsewhere: see ``RunOutcome.HELD``).

    A message whose job was deleted still takes a turn, of ``queue``, the queue it came from:
    another message's turn may have run that job already, so a queued job is owed this turn
    (without it, that job would wait for the reaper's resend). When the deleted job never ran
    its turn is one more than the queue needs: a later message then finds the queue empty.
    Without ``queue`` (a message run outside a worker) it takes none."""
    own = Generation.objects.filter(pk=generation_id).first()
    if own is None and not queue:
        return None
    if own is None:
        logger.info("generation %s is gone; its message takes a turn of %s", generation_id, queue)
    elif own.status == Generation.Status.RUNNING:
        taken = generation_claim(generation_id=generation_id, worker=worker)
        if taken is not None:  # its worker is gone: taken over
            # The message that ran it there may be lost with that worker (a killed worker's
            # message waits for the broker's visibility timeout), and by fair share it may
            # have been another job's turn: one more turn of the queue, so that no queued job
            # waits for REAP_QUEUED_AFTER_SECONDS. A spare turn finds the queue empty.
            send_turn(taken)
            return taken
    for _ in range(8):  # another worker may claim the first one between the read and here
        if own is None:
            order = _named_queue_order(queue)
        else:
            order = scheduler.generation_queue(generation=own)
        now = timezone.now()
        expired = [
            job
            for job in order
            if job.max_queue_seconds is not None
            and (now - job.created_at).total_seconds() > job.max_queue_seconds
        ]
        for job in expired:
            generation_expire(generation=job, tell_queue=False)
        order = [job for job in order if job not in expired]
        if not order:
            return None
        claimed = generation_claim(generation_id=order[0].pk, worker=worker)
        if claimed is not None:
            publish_queue_places(claimed)  # the jobs behind it (and the expired) moved up
            return claimed
    return None


class RunOutcome(enum.Enum):
    DONE = "done"  # ran (or failed, or was cancelled) here
    GONE = "gone"  # finished or deleted already: nothing to do
    HELD = "held"  # running on a worker whose heartbeat is fresh: look again later


class Heartbeat:
    """Writes ``heartbeat_at`` of the jobs this worker holds every HEARTBEAT_SECONDS, from a
    thread, so a job busy in one long call (loading a model, a PatchMatch fill) still beats.
    When the process dies the heartbeat stops, and the job can be taken over.

    A job cancelled while it runs is still held until the worker has stopped it: it beats on,
    and counts against its owner's quota (``generations.holds_quota``) until the worker lets
    it go, when its heartbeat is cleared. So cancel-and-resubmit cannot queue more work than
    the quota while the worker is still busy with the cancelled jobs."""

    def __init__(self) -> None:
        self._tokens: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def add(self, generation: Generation) -> None:
        self._tokens = {**self._tokens, generation.pk: generation.attempt_token}

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        for pk, token in self._tokens.items():  # let go: a finished job holds nothing
            try:
                Generation.objects.filter(pk=pk, attempt_token=token).exclude(
                    status=Generation.Status.RUNNING
                ).update(heartbeat_at=None)
            except DatabaseError as exc:  # its heartbeat goes stale instead
                logger.warning("generation %s not let go: %s", pk, exc)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.HEARTBEAT_SECONDS):
                for pk, token in self._tokens.items():
                    try:
                        Generation.objects.filter(
                            pk=pk,
                            attempt_token=token,
                            status__in=(Generation.Status.RUNNING, Generation.Status.CANCELLED),
                        ).update(heartbeat_at=timezone.now())
                    except DatabaseError as exc:  # the next beat tries again
                        logger.warning("heartbeat of %s not written: %s", pk, exc)
        finally:
            connections.close_all()  # this thread's own connection


def generation_run(*, generation_id: str, worker: str = "", queue: str | None = None) -> RunOutcome:
    """Claim for ``worker``, run the engine with progress and cancel, then record the outcome.
    A job's message is a turn of its queue (``queue``: the one it came from): it runs the job
    whose turn it is in fair share (``scheduler.queue_order``), that one or another, even when
    its own job was deleted; every job has one message, so every queued job runs. A diffusers
    job may take up to ``BATCH_MAX_JOBS - 1`` compatible queued jobs along into one batch
    (``_batch_companions``)."""
    generation = _claim_fair_turn(generation_id, worker, queue)
    if generation is None:
        status = selectors.generation_status(generation_id=generation_id)
        logger.info("generation %s is %s; not claimed here", generation_id, status)
        return RunOutcome.HELD if status == Generation.Status.RUNNING else RunOutcome.GONE
    with Heartbeat() as heartbeat:
        heartbeat.add(generation)
        _run_claimed(generation, heartbeat, worker)
    return RunOutcome.DONE


def _run_claimed(generation: Generation, heartbeat: Heartbeat, worker: str) -> None:
    if generation.is_upscale or generation.is_split:
        run = split_job_run if generation.is_split else upscale_job_run
        try:
            outcome = run(generation, GenerationProgress(generation))
        except Exception as exc:  # noqa: BLE001 - recorded like any outcome
            outcome = exc
        _record_outcome(generation, outcome, {})
        return
    params = GenerationParams.from_json(generation.params)
    try:
        backend, backend_notes = backend_for(generation, params)
    except Exception as exc:  # noqa: BLE001 - recorded like any outcome
        _record_outcome(generation, exc, None)
        return
    jobs = [generation]
    if engine.runs_a_model(backend.name):
        jobs += _batch_companions(generation, params, settings.BATCH_MAX_JOBS - 1, worker)
    for companion in jobs[1:]:
        heartbeat.add(companion)
    progresses = [GenerationProgress(job) for job in jobs]
    requests, runnable = [], []
    for job, progress in zip(jobs, progresses, strict=True):
        try:
            request = generation_request(job)
            if engine.runs_a_model(backend.name):  # the other engines ignore them
                request = replace(request, **planned_uses(job.plan))
            requests.append(request)
            runnable.append((job, progress))
        except Exception as exc:  # noqa: BLE001 - that job fails, the others run
            _record_outcome(job, exc, None)
    if not runnable:
        return
    if requests[0].layers:  # a layered job runs alone (``_batch_params``)
        progress = runnable[0][1]
        try:
            outcomes = [
                engine.run_inpaint(
                    requests[0], backend, progress=progress, is_cancelled=progress.is_cancelled
                )
            ]
        except Exception as exc:  # noqa: BLE001 - recorded like any outcome
            outcomes = [exc]
    else:  # one job or several: the runner batches what it can and runs the rest one by one
        outcomes = engine.run_inpaint_batch(
            requests,
            backend,
            progresses=[progress for _, progress in runnable],
            cancel_checks=[progress.is_cancelled for _, progress in runnable],
        )
    for (job, _), outcome in zip(runnable, outcomes, strict=True):
        _record_outcome(job, outcome, backend_notes)


def _batch_params(generation: Generation, params: GenerationParams) -> tuple:
    """What jobs must share to run in one model batch, known before any picture is read: the
    engine and model, the input's size and the crop that decides the working size, and every
    field the runner's ``engine.batch_key`` compares (``engine.BATCH_SETTINGS``, the same list
    for both; the additions as the job's plan keeps them, the reference pictures; an
    IP-Adapter job batches with none,
    its reference picture is its own; nor does a layered job, nor one of a sequence,
    ``Generation.RUNS_ALONE``). The runner then checks the working
    size; a companion claimed here is never one it refuses for another reason."""
    alone = params.ip_adapter or params.layers or generation.metadata.get(Generation.RUNS_ALONE)
    return (
        generation.pk if alone else None,
        generation.engine,
        generation.library_model_id,
        generation.model_name,
        generation.source.width,
        generation.source.height,
        *(getattr(params, name) for name in engine.BATCH_SETTINGS),
        json.dumps(generation.plan, sort_keys=True),
        params.inpaint_area,
        params.padding,
        json.dumps(params.outpaint, sort_keys=True),
        generation.reference_links.count(),
    )


def _batch_companions(
    generation: Generation, params: GenerationParams, limit: int, worker: str
) -> list[Generation]:
    """Up to ``limit`` queued jobs that can share this job's batch, claimed for this worker.
    They are taken in the queue's fair-share order (``scheduler.generation_queue``), and the
    walk stops at the first job of another user that does not fit the batch: a batch never
    takes another user's turn. The batch owner's own jobs that do not fit may be passed over
    (only the owner's jobs then go ahead of them). Their own queue messages then run other
    turns."""
    if limit < 1:
        return []
    key = _batch_params(generation, params)
    companions = []
    for candidate in scheduler.generation_queue(generation=generation):
        if _batch_params(candidate, GenerationParams.from_json(candidate.params)) != key:
            if candidate.owner_id != generation.owner_id:
                break  # another user's turn comes before any later job of this batch
            continue
        claimed = generation_claim(generation_id=candidate.pk, worker=worker)
        if claimed is not None:
            companions.append(claimed)
        if len(companions) == limit:
            break
    if companions:
        publish_queue_places(generation)  # the jobs behind them moved up
    return companions


def _record_outcome(generation: Generation, outcome, backend_notes: dict) -> None:
    """A job's result or the exception that ended it, recorded once."""
    if isinstance(outcome, engine.InpaintResult):
        outcome.metadata.update(backend_notes)
        generation_succeed(generation=generation, result=outcome)
    elif isinstance(outcome, engine.Cancelled):
        # generation_cancel already recorded the outcome; the worker just stops.
        logger.info("generation %s cancelled while running", generation.pk)
    elif isinstance(outcome, engine.EngineError):
        generation_fail(generation=generation, message=str(outcome))
    elif isinstance(outcome, SoftTimeLimitExceeded):
        generation_fail(generation=generation, message="The job ran past its time limit.")
    else:
        logger.error("generation %s crashed", generation.pk, exc_info=outcome)
        generation_fail(generation=generation, message=f"Internal error: {type(outcome).__name__}.")


def _model_ran(generation: Generation, result: engine.InpaintResult) -> str:
    """The model that made the images, as people name it: the library model the job asked
    for when its engine ran (the result knows only its path), else what the result says (an
    engine that ran instead, after a fallback)."""
    return generation.model_name if result.engine == generation.engine else result.model


def _output_parameters(generation: Generation, result: engine.InpaintResult, index: int) -> dict:
    """What goes into the output PNG's ``parameters`` text chunk (an upscale job's: its size
    and upscaler, and the model's architecture and scale)."""
    params = GenerationParams.from_json(generation.params).to_json()
    if generation.is_upscale:
        params = {"upscale": params["upscale"], **result.metadata}
    if generation.is_split:
        params = {"split": params["split"], "prompt": params["prompt"], **result.metadata}
    params.update(
        seed=result.seeds[index],
        engine=result.engine,
        model=_model_ran(generation, result),
        generation=str(generation.pk),
        index=index,
    )
    if result.metadata.get("scheduler"):
        params["scheduler_used"] = result.metadata["scheduler"]
    if generation.is_upscale:
        del params["seed"]  # an upscale has none
    return params


def generation_succeed(*, generation: Generation, result: engine.InpaintResult) -> bool:
    """Store the images, each with its thumbnail for the pages, and mark success, unless the
    job was cancelled meanwhile."""
    images = []
    for index, (image, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
        png = engine.png_with_parameters(image, _output_parameters(generation, result, index))
        thumbnail = engine.thumbnail_webp(image) if thumbnail_made_with(image) else b""
        row = GeneratedImage(
            generation=generation,
            index=index,
            width=image.width,
            height=image.height,
            seed=seed,
            stored_bytes=len(png) + len(thumbnail),
        )
        row.file.save("out.png", ContentFile(png), save=False)
        if thumbnail:
            row.thumbnail.save("thumbnail.webp", ContentFile(thumbnail), save=False)
        images.append(row)
    now = timezone.now()
    with transaction.atomic():
        attempt = Generation.objects.select_for_update().filter(
            pk=generation.pk,
            status=Generation.Status.RUNNING,
            attempt_token=generation.attempt_token,
        )
        # The row's metadata as it is now, not as the job found it: a key written while it
        # ran (``generation_repeat``'s sequence) stays.
        stored = attempt.values_list("metadata", flat=True).first()
        done = attempt.update(
            status=Generation.Status.SUCCEEDED,
            seed=result.seeds[0],
            model_name=_model_ran(generation, result),
            engine=result.engine,
            metadata={**(stored or {}), **result.metadata},
            finished_at=now,
            step=F("total_steps"),
            inference_seconds=result.inference_seconds,
            total_seconds=(now - generation.created_at).total_seconds(),
        )
        if done:
            GeneratedImage.objects.bulk_create(images)
    if not done:
        for row in images:
            row.file.delete(save=False)
            if row.thumbnail:
                row.thumbnail.delete(save=False)
        return False
    # Waiting clients wake on this event: it goes out first.
    publish(generation, {"type": Event.COMPLETED, "id": str(generation.pk)})
    generation.refresh_from_db()
    webhooks.schedule(generation)
    publish(generation, status_event(generation), to_user=True)
    return True


def generation_fail(*, generation: Generation, message: str, only_queued: bool = False) -> bool:
    """Fail the running attempt ``generation`` holds (its token); False if another took over.
    ``only_queued``: fail it while it is still queued (it never ran), else nothing."""
    now = timezone.now()
    held = (
        Q(status=Generation.Status.QUEUED)
        if only_queued
        else Q(status=Generation.Status.RUNNING, attempt_token=generation.attempt_token)
    )
    done = Generation.objects.filter(held, pk=generation.pk).update(
        status=Generation.Status.FAILED,
        error=message[:2000],
        finished_at=now,
        total_seconds=(now - generation.created_at).total_seconds(),
    )
    if done:
        generation.refresh_from_db()
        webhooks.schedule(generation)
        publish(generation, {"type": Event.FAILED, "id": str(generation.pk), "message": message})
        publish(generation, status_event(generation), to_user=True)
    return bool(done)
