"""Everything that writes generations: create, claim, run, finish, fail, cancel, rerun, delete.

State changes are conditional updates (``queued`` -> ``running`` -> terminal), so a
redelivered task message, a late cancel or a double click never produces two outcomes.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from PIL import Image

from accounts.models import ApiKey, User

from . import engine, selectors, webhooks
from .conf import engine_config, record_model_status
from .models import GeneratedImage, Generation, Mask, SourceImage
from .params import GenerationParams
from .progress import GenerationProgress, publish, status_event
from .uploads import (
    IMAGE_FORMATS,
    MASK_FORMATS,
    UploadError,
    check_dimensions,
    encode_png,
    read_image,
    thumbnail_png,
)

logger = logging.getLogger(__name__)


class GenerationError(Exception):
    """A client mistake found by a service; ``field`` names the input, ``status`` the code."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


@dataclass
class Submission:
    generation: Generation
    created: bool  # False when an idempotency key returned an existing generation


# --- inputs ---------------------------------------------------------------------------------


def source_image_create(*, owner: User, image: Image.Image) -> SourceImage:
    """The working copy every job on this image reads: an uncompressed PNG, which is written
    and read about 10x faster than a compressed one, for a file 1.3x to 2x larger."""
    encoded = encode_png(engine.to_rgb(image), compress=False)
    source = SourceImage(
        owner=owner, width=encoded.width, height=encoded.height, sha256=encoded.sha256
    )
    source.file.save("source.png", ContentFile(encoded.data), save=False)
    source.save()
    return source


def mask_create(*, owner: User, mask: Image.Image) -> Mask:
    """Store the mask as uploaded (alpha kept: it carries meaning) plus a 128 px thumbnail."""
    encoded = encode_png(mask)
    row = Mask(owner=owner, width=encoded.width, height=encoded.height, sha256=encoded.sha256)
    row.file.save("mask.png", ContentFile(encoded.data), save=False)
    row.thumbnail.save("thumb.png", ContentFile(thumbnail_png(mask)), save=False)
    row.save()
    return row


def _open_stored(field_file) -> Image.Image:
    with field_file.open("rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
        image.load()
    return image


def _stored_mask(generation: Generation) -> Image.Image | None:
    return _open_stored(generation.mask.file) if generation.mask_id else None


# --- create ---------------------------------------------------------------------------------


def _validate(params: GenerationParams, image: Image.Image, mask: Image.Image | None) -> str:
    """Check what can be checked before queueing; returns the engine the job will use."""
    config = engine_config()
    try:
        engine_name = config.choose(params.engine)
        effective = engine.prepare_mask(params.to_request(image=image, mask=mask))
        engine.check_fillable(engine_name, effective)
    except engine.InvalidInput as exc:
        message = str(exc)
        field = exc.field or next(
            (f for f in ("engine", "outpaint", "inpaint_area", "padding") if f in message), "mask"
        )
        raise GenerationError(message, field=field) from None
    if engine_name == "diffusers" and not params.prompt.strip():
        raise GenerationError("A prompt is required for the diffusers engine.", field="prompt")
    return engine_name


def mask_preview(*, mask_file, size: tuple[int, int], options: engine.MaskOptions) -> bytes:
    """The effective mask as a grayscale PNG (255 = regenerated), exactly as a job would use it.

    The studio draws its overlay from this, so the rule stays in the engine alone.
    """
    try:
        check_dimensions(*size, field="width")  # the requested size, before any pixel work
        mask = read_image(mask_file, field="mask", formats=MASK_FORMATS)
        values = engine.effective_mask(mask, size, options)
    except UploadError as exc:
        raise GenerationError(exc.message, field=exc.field) from None
    except engine.InvalidInput as exc:
        raise GenerationError(str(exc), field="mask") from None
    return engine.encode_png(Image.fromarray(values, "L"))


def mask_generate(
    *,
    image_file,
    method: str,
    box=None,
    points=(),
    point=None,
    tolerance: int = 32,
    mask_mode: str = "black_inpaints",
) -> bytes:
    """A mask PNG from GrabCut (box and / or points) or a colour selection (flood = connected)."""
    from .engine import segment

    try:
        image = read_image(image_file, field="image", formats=IMAGE_FORMATS)
        if method == "grabcut":
            selected = segment.grabcut(
                image,
                box=box,
                foreground=[p[:2] for p in points if len(p) < 3 or p[2]],
                background=[p[:2] for p in points if len(p) >= 3 and not p[2]],
            )
        else:
            selected = segment.colour_select(
                image, point=point[:2], tolerance=tolerance, contiguous=method == "flood"
            )
    except UploadError as exc:
        raise GenerationError(exc.message, field=exc.field) from None
    except engine.InvalidInput as exc:
        raise GenerationError(str(exc), field="point" if method != "grabcut" else "box") from None
    return engine.encode_png(segment.selection_to_mask(selected, mask_mode))


def request_fingerprint(
    *, client: str, params: GenerationParams, files: tuple, webhook_url: str | None
) -> str:
    """What makes two submissions the same request: the endpoint (client surface), every
    parameter, the uploaded bytes and the webhook. An idempotency key replays only that."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps([client, params.to_json(), webhook_url or ""], sort_keys=True).encode()
    )
    for upload in files:
        digest.update(b"\x00file:")
        if upload is not None:
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
    return digest.hexdigest()


def _replay(user: User, idempotency_key: str | None, fingerprint: str) -> Generation | None:
    """The generation an idempotency key already created, if this is the same request; a 422
    if the key was used for a different one (another body, or another endpoint)."""
    if not idempotency_key:
        return None
    existing = Generation.objects.filter(owner=user, idempotency_key=idempotency_key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise GenerationError(
            "This Idempotency-Key was already used for a different request (another body or "
            "another endpoint); use a new key for a new request.",
            field="Idempotency-Key",
            status=422,
        )
    return existing


@contextlib.contextmanager
def _files_removed_on_rollback():
    """Files saved inside the block are deleted again if the block raises: storage has no
    transactions, and no file may outlive a row that was rolled back."""
    saved: list = []
    try:
        yield saved
    except BaseException:
        for field_file in saved:
            field_file.storage.delete(field_file.name)
        raise


def generation_create(
    *,
    user: User,
    image_file,
    mask_file,
    params: GenerationParams,
    client: str = Generation.Client.API,
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
    extra_metadata: dict | None = None,
    webhook_url: str | None = None,
) -> Submission:
    """Validate the uploads, store them, create a queued generation and enqueue it on commit.

    Preconditions: ``params`` passed the API's range checks. Raises ``GenerationError`` for
    client mistakes (bad files, mask mismatch, quota, an idempotency key reused for another
    request); nothing is stored in that case.
    """
    fingerprint = ""
    if idempotency_key:
        fingerprint = request_fingerprint(
            client=client, params=params, files=(image_file, mask_file), webhook_url=webhook_url
        )
    existing = _replay(user, idempotency_key, fingerprint)
    if existing is not None:
        return Submission(existing, created=False)
    if webhook_url:
        try:
            webhooks.validate_url(webhook_url)
        except webhooks.WebhookRefused as exc:
            raise GenerationError(str(exc), field="webhook_url") from None
    if mask_file is None and not params.outpaint:
        raise GenerationError("A mask file is required unless outpaint is given.", field="mask")
    try:
        image = read_image(image_file, field="image", formats=IMAGE_FORMATS)
        mask = read_image(mask_file, field="mask", formats=MASK_FORMATS) if mask_file else None
    except UploadError as exc:
        raise GenerationError(exc.message, field=exc.field) from None
    engine_name = _validate(params, image, mask)
    try:
        with _files_removed_on_rollback() as saved, transaction.atomic():
            _check_quota(user)
            source = source_image_create(owner=user, image=image)
            saved.append(source.file)
            mask_row = mask_create(owner=user, mask=mask) if mask is not None else None
            if mask_row is not None:
                saved += [mask_row.file, mask_row.thumbnail]
            generation = _generation_insert(
                user=user,
                source=source,
                mask=mask_row,
                params=params,
                engine_name=engine_name,
                client=client,
                api_key=api_key,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                metadata=extra_metadata,
                webhook_url=webhook_url,
            )
    except IntegrityError:
        # The same idempotency key raced with itself: the first one won.
        existing = _replay(user, idempotency_key, fingerprint)
        if existing is None:
            raise
        return Submission(existing, created=False)
    return Submission(generation, created=True)


def _check_quota(user: User) -> None:
    """At most N active generations per user; the user row lock serialises concurrent POSTs."""
    User.objects.select_for_update().filter(pk=user.pk).first()
    active = Generation.objects.filter(owner=user, status__in=Generation.ACTIVE).count()
    limit = settings.MAX_ACTIVE_GENERATIONS_PER_USER
    if active >= limit:
        raise GenerationError(
            f"You already have {active} generations queued or running (the limit is {limit}); "
            "wait for one to finish or cancel one.",
            status=429,
        )


def _generation_insert(
    *,
    user,
    source,
    mask,
    params,
    engine_name,
    client,
    api_key,
    idempotency_key,
    fingerprint="",
    metadata=None,
    webhook_url=None,
) -> Generation:
    generation = Generation.objects.create(
        owner=user,
        api_key=api_key,
        client=client,
        source=source,
        mask=mask,
        prompt=params.prompt,
        params=params.to_json(),
        engine=engine_name,
        model_name=engine_config().model_name(engine_name),
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
        metadata=metadata or {},
        webhook_url=webhook_url or "",
    )
    transaction.on_commit(lambda: _enqueue(generation))
    return generation


def _enqueue(generation: Generation, *, priority: int | None = None) -> None:
    """Send the task message. If the broker is down the job stays queued and the reaper
    sends it again later; a duplicate message is harmless (the claim is conditional)."""
    from kombu.exceptions import OperationalError

    from .tasks import run_generation

    Generation.objects.filter(pk=generation.pk).update(enqueued_at=timezone.now())
    try:
        run_generation.apply_async(
            args=[str(generation.pk)],
            queue="inference",
            priority=settings.CELERY_TASK_DEFAULT_PRIORITY if priority is None else priority,
        )
    except OperationalError as exc:
        logger.warning("generation %s not sent (%s); the reaper resends it", generation.pk, exc)
        return
    publish(generation, status_event(generation), to_user=True)


def generation_rerun(
    *, generation: Generation, user: User, client: str | None = None
) -> Generation:
    """Queue the same inputs and parameters again (the same requested seed)."""
    params = GenerationParams.from_json(generation.params)
    engine_name = _validate(params, _open_stored(generation.source.file), _stored_mask(generation))
    with transaction.atomic():
        _check_quota(user)
        return _generation_insert(
            user=user,
            source=generation.source,
            mask=generation.mask,
            params=params,
            engine_name=engine_name,
            client=client or generation.client,
            api_key=None,
            idempotency_key=None,
        )


# --- run (worker side) -----------------------------------------------------------------------


def diffusion_model_load() -> engine.EngineError | None:
    """Load the diffusion model in this process and report the outcome for the web side."""
    config = engine_config()
    backend = engine.get_backend("diffusers", config)
    try:
        backend.load()
    except engine.EngineError as exc:
        logger.error("%s", exc)
        record_model_status(loaded=False, model=backend.model, error=str(exc))
        return exc
    record_model_status(loaded=True, model=backend.model, device=backend.device)
    logger.info("diffusion model %s loaded on %s", backend.model, backend.device)
    return None


def _backend_for(generation: Generation, params: GenerationParams):
    """The job's backend; under INPAINT_ENGINE=auto a model that cannot load falls back to
    the classical engine (a job that asked for diffusers by name fails instead)."""
    config = engine_config()
    if generation.engine != "diffusers":
        return engine.get_backend(generation.engine, config), None
    backend = engine.get_backend("diffusers", config)
    if backend.loaded:  # the usual case: loaded when the worker started
        return backend, None
    error = diffusion_model_load()
    if error is None:
        return backend, None
    if config.engine == "auto" and params.engine is None:
        note = f"The diffusion model could not be loaded; the classical engine ran instead. {error}"
        return engine.get_backend("classical", config), note
    raise error


def _takeable() -> Q:
    """Jobs a worker may claim: queued ones, and running ones whose worker is provably gone
    (no heartbeat for HEARTBEAT_TIMEOUT_SECONDS) while attempts remain."""
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    orphaned = Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    return Q(status=Generation.Status.QUEUED) | (
        Q(status=Generation.Status.RUNNING, attempts__lt=settings.MAX_GENERATION_ATTEMPTS)
        & orphaned
    )


def generation_claim(*, generation_id: str) -> Generation | None:
    """Take the job for this worker with a new attempt token; None when it is not takeable
    (finished, or running on a live worker). Only the token's holder records the outcome."""
    now = timezone.now()
    claimed = Generation.objects.filter(_takeable(), pk=generation_id).update(
        status=Generation.Status.RUNNING,
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


class RunOutcome(enum.Enum):
    DONE = "done"  # ran (or failed, or was cancelled) here
    GONE = "gone"  # finished or deleted already: nothing to do
    HELD = "held"  # running on a worker whose heartbeat is fresh: look again later


class Heartbeat:
    """Writes ``heartbeat_at`` of the jobs this worker holds every HEARTBEAT_SECONDS, from a
    thread, so a job busy in one long call (loading a model, a PatchMatch fill) still beats.
    When the process dies the heartbeat stops, and the job can be taken over."""

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

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.HEARTBEAT_SECONDS):
                for pk, token in self._tokens.items():
                    try:
                        Generation.objects.filter(
                            pk=pk, attempt_token=token, status=Generation.Status.RUNNING
                        ).update(heartbeat_at=timezone.now())
                    except DatabaseError as exc:  # the next beat tries again
                        logger.warning("heartbeat of %s not written: %s", pk, exc)
        finally:
            connections.close_all()  # this thread's own connection


def generation_run(*, generation_id: str) -> RunOutcome:
    """Claim, run the engine with progress and cancel, then record the outcome. A diffusers
    job may take up to ``BATCH_MAX_JOBS - 1`` compatible queued jobs along into one batch."""
    generation = generation_claim(generation_id=generation_id)
    if generation is None:
        status = selectors.generation_status(generation_id=generation_id)
        logger.info("generation %s is %s; not claimed here", generation_id, status)
        return RunOutcome.HELD if status == Generation.Status.RUNNING else RunOutcome.GONE
    with Heartbeat() as heartbeat:
        heartbeat.add(generation)
        _run_claimed(generation, heartbeat)
    return RunOutcome.DONE


def _run_claimed(generation: Generation, heartbeat: Heartbeat) -> None:
    params = GenerationParams.from_json(generation.params)
    try:
        backend, fallback_note = _backend_for(generation, params)
    except Exception as exc:  # noqa: BLE001 - recorded like any outcome
        _record_outcome(generation, exc, None)
        return
    jobs = [generation]
    if backend.name == "diffusers":
        jobs += _batch_companions(generation, params, settings.BATCH_MAX_JOBS - 1)
    for companion in jobs[1:]:
        heartbeat.add(companion)
    progresses = [GenerationProgress(job) for job in jobs]
    requests, runnable = [], []
    for job, progress in zip(jobs, progresses, strict=True):
        try:
            job_params = GenerationParams.from_json(job.params)
            requests.append(
                job_params.to_request(image=_open_stored(job.source.file), mask=_stored_mask(job))
            )
            runnable.append((job, progress))
        except Exception as exc:  # noqa: BLE001 - that job fails, the others run
            _record_outcome(job, exc, None)
    if not runnable:
        return
    # One job or several: the runner batches what it can and runs the rest one by one.
    outcomes = engine.run_inpaint_batch(
        requests,
        backend,
        progresses=[progress for _, progress in runnable],
        cancel_checks=[progress.is_cancelled for _, progress in runnable],
    )
    for (job, _), outcome in zip(runnable, outcomes, strict=True):
        _record_outcome(job, outcome, fallback_note)


def _batch_params(generation: Generation, params: GenerationParams) -> tuple:
    """What jobs must share to run in one model batch (the runner checks the final size)."""
    return (
        generation.engine,
        generation.source.width,
        generation.source.height,
        params.num_inference_steps,
        params.denoising_strength,
        params.guidance_scale,
        params.scheduler,
        params.inpaint_area,
        params.padding,
        json.dumps(params.outpaint, sort_keys=True),
    )


def _batch_companions(
    generation: Generation, params: GenerationParams, limit: int
) -> list[Generation]:
    """Up to ``limit`` queued jobs that can share this job's batch, claimed for this worker
    (oldest first). Their own queue messages then find them claimed and do nothing."""
    if limit < 1:
        return []
    key = _batch_params(generation, params)
    candidates = (
        Generation.objects.filter(status=Generation.Status.QUEUED, engine=generation.engine)
        .exclude(pk=generation.pk)
        .select_related("source")
        .order_by("created_at")[: limit * 8]
    )
    companions = []
    for candidate in candidates:
        if _batch_params(candidate, GenerationParams.from_json(candidate.params)) != key:
            continue
        claimed = generation_claim(generation_id=candidate.pk)
        if claimed is not None:
            companions.append(claimed)
        if len(companions) == limit:
            break
    return companions


def _record_outcome(generation: Generation, outcome, fallback_note: str | None) -> None:
    """A job's result or the exception that ended it, recorded once."""
    if isinstance(outcome, engine.InpaintResult):
        if fallback_note:
            outcome.metadata["fallback"] = fallback_note
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


def _output_parameters(generation: Generation, result: engine.InpaintResult, index: int) -> dict:
    """What goes into the output PNG's ``parameters`` text chunk."""
    params = GenerationParams.from_json(generation.params).to_json()
    params.update(
        seed=result.seeds[index],
        engine=result.engine,
        model=result.model,
        generation=str(generation.pk),
        index=index,
    )
    return params


def generation_succeed(*, generation: Generation, result: engine.InpaintResult) -> bool:
    """Store the images and mark success, unless the job was cancelled meanwhile."""
    images = []
    for index, (image, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
        row = GeneratedImage(
            generation=generation, index=index, width=image.width, height=image.height, seed=seed
        )
        png = engine.png_with_parameters(image, _output_parameters(generation, result, index))
        row.file.save("out.png", ContentFile(png), save=False)
        images.append(row)
    now = timezone.now()
    with transaction.atomic():
        done = Generation.objects.filter(
            pk=generation.pk,
            status=Generation.Status.RUNNING,
            attempt_token=generation.attempt_token,
        ).update(
            status=Generation.Status.SUCCEEDED,
            seed=result.seeds[0],
            model_name=result.model,
            engine=result.engine,
            metadata={**(generation.metadata or {}), **result.metadata},
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
        return False
    # Waiting clients wake on this event: it goes out first.
    publish(generation, {"type": "completed", "id": str(generation.pk)})
    generation.refresh_from_db()
    webhooks.schedule(generation)
    publish(generation, status_event(generation), to_user=True)
    return True


def generation_fail(*, generation: Generation, message: str) -> bool:
    """Fail the running attempt ``generation`` holds (its token); False if another took over."""
    now = timezone.now()
    done = Generation.objects.filter(
        pk=generation.pk, status=Generation.Status.RUNNING, attempt_token=generation.attempt_token
    ).update(
        status=Generation.Status.FAILED,
        error=message[:2000],
        finished_at=now,
        total_seconds=(now - generation.created_at).total_seconds(),
    )
    if done:
        generation.refresh_from_db()
        webhooks.schedule(generation)
        publish(generation, {"type": "failed", "id": str(generation.pk), "message": message})
        publish(generation, status_event(generation), to_user=True)
    return bool(done)


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
    ``REAP_QUEUED_AFTER_SECONDS``. Each change is conditional, so two reapers (or a reaper
    and a redelivered message) never act twice on one job."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    queued = Generation.objects.filter(status=Generation.Status.QUEUED)
    if not _broker_lost_its_data():
        lost_cutoff = timezone.now() - timedelta(seconds=settings.REAP_QUEUED_AFTER_SECONDS)
        queued = queued.filter(
            Q(enqueued_at__lt=lost_cutoff) | Q(enqueued_at__isnull=True, created_at__lt=lost_cutoff)
        )
    for generation in queued:
        counts["resent"] += 1
        _enqueue(generation)
    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    orphaned = Generation.objects.filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale),
        status=Generation.Status.RUNNING,
    )
    for generation in orphaned:
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
                    lambda g=generation: _enqueue(g, priority=settings.TAKEOVER_PRIORITY)
                )
    return counts


# --- user actions ----------------------------------------------------------------------------


def generation_cancel(*, generation: Generation) -> None:
    """Cancel a queued or running generation; a running one stops within one step."""
    now = timezone.now()
    done = Generation.objects.filter(pk=generation.pk, status__in=Generation.ACTIVE).update(
        status=Generation.Status.CANCELLED,
        finished_at=now,
        total_seconds=(now - generation.created_at).total_seconds(),
    )
    if not done:
        generation.refresh_from_db()
        raise GenerationError(
            f"The generation is already {generation.status}; only queued or running "
            "generations can be cancelled.",
            status=409,
        )
    generation.refresh_from_db()
    webhooks.schedule(generation)
    publish(generation, {"type": "cancelled", "id": str(generation.pk)})
    publish(generation, status_event(generation), to_user=True)


def generation_delete(*, generation: Generation) -> None:
    """Delete the generation, its output files, and its inputs unless another job uses them."""
    if generation.status in Generation.ACTIVE:
        Generation.objects.filter(pk=generation.pk, status__in=Generation.ACTIVE).update(
            status=Generation.Status.CANCELLED
        )
    source_id, mask_id = generation.source_id, generation.mask_id
    gone = Generation(pk=generation.pk, owner_id=generation.owner_id)  # delete() clears pk
    with transaction.atomic():
        generation.delete()  # output rows cascade; django-cleanup deletes their files on commit
        if not Generation.objects.filter(source_id=source_id).exists():
            SourceImage.objects.filter(pk=source_id).delete()
        if mask_id and not Generation.objects.filter(mask_id=mask_id).exists():
            Mask.objects.filter(pk=mask_id).delete()
        # Clients waiting on the job (API requests, sockets) stop waiting at once.
        transaction.on_commit(
            lambda: publish(gone, {"type": "deleted", "id": str(gone.pk)}, to_user=True)
        )
