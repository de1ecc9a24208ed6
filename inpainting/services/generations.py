"""What users do to generations: create (with idempotency), re-run, cancel, delete."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image

from accounts.authentication import api_key_still_usable
from accounts.models import ApiKey, User

from .. import engine, gate, scheduler, selectors
from ..conf import engine_config
from ..engine.layers import regions_for
from ..engine.masks import mask_file_of
from ..engine.parameters import FILL_ENGINE_UNUSED
from ..errors import ClientError
from ..gate import PIXELS
from ..models import (
    Generation,
    GenerationLayer,
    GenerationReference,
    Mask,
    SourceImage,
    reserved_bytes,
    stored_bytes,
)
from ..params import GenerationParams
from ..progress import Event, publish, publish_queue_places, status_event
from ..uploads import IMAGE_FORMATS, MASK_FORMATS, decode_image, image_size, read_upload
from . import layer_models, library, upscalers, webhooks
from .files import (
    mask_create,
    open_stored,
    source_image_create,
    stored_layers,
    stored_mask,
    stored_references,
)
from .instructions import instruction_to_mask
from .models import model_served_check
from .plan import JobPlan, job_plan
from .queue import enqueue
from .usage import usage_quota_check

#: The most reference pictures a request may send (the edit families read at most 2 beside the
#: picture they edit; Qwen-Image-Edit Plus: 3 pictures in all). Counted before any is read.
MAX_REFERENCE_IMAGES = 3


@dataclass(frozen=True)
class Sender:
    """Who sends a job: its user, the client surface it came through (an API's, the studio's,
    the command line's), the API key it used (None: a session or the command line) and its
    ``Idempotency-Key``; ``fingerprint``, what makes two of its requests the same one
    (``fingerprinted``)."""

    user: User
    client: str = Generation.Client.API
    api_key: ApiKey | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""
    #: A person at a page of this site (the studio, with its page's token; the history page's
    #: forms), not a script: the studio lane (``job_priority``).
    interactive: bool = False

    def fingerprinted(
        self, params: GenerationParams, files: tuple, webhook_url=None, extra=None
    ) -> Sender:
        """The same sender, with the request's fingerprint when it sent an idempotency key."""
        if not self.idempotency_key:
            return self
        fingerprint = request_fingerprint(
            client=self.client, params=params, files=files, webhook_url=webhook_url, extra=extra
        )
        return dataclasses.replace(self, fingerprint=fingerprint)


@dataclass
class Submission:
    generation: Generation
    created: bool  # False when an idempotency key returned an existing generation


@dataclass(frozen=True)
class Checked:
    """A job as it will run: its plan (engine, model, additions), its parameters with what
    the request left to the model filled in, and the warnings its answer carries (parameters
    the model does not use)."""

    plan: JobPlan
    params: GenerationParams
    warnings: list[dict[str, str]]
    #: The mask the job is stored with: the request's, or a layered job's area (the layers'
    #: union, written in the request's polarity) when it sent none.
    mask: Image.Image | None = None


#: The metadata key that says a job's mask is its layers' union, made for it (the request sent
#: none): a project of the job keeps the layers alone.
MASK_FROM_LAYERS = "mask_from_layers"


#: A native API's mask that selects more of the picture than this to regenerate is most likely
#: of the other polarity (the studio's downloaded masks are white = regenerated, this API's
#: default black): its answer warns, naming ``mask_mode``. A studio mask sent as it was
#: regenerated 97 % of a picture with no word.
POLARITY_WARNING_SHARE = 0.9


def _validate(
    plan: JobPlan,
    params: GenerationParams,
    image: Image.Image,
    mask: Image.Image | None,
    *,
    polarity_warned: bool = False,
    layer_masks: tuple = (),
) -> Checked:
    """Check, the pictures decoded, what the plan could not (the mask fits the engine, the
    prompt fits the model); a diffusion job's parameters resolved for its model's family.
    ``polarity_warned``: a native API's mask, warned of when it selects nearly everything.
    ``layer_masks``: a layered job's, in its layers' order (``engine.layers``)."""
    layered: list[dict[str, str]] = []
    if layer_masks:
        whole = params.with_defaults().to_request(image=image, mask=mask, layer_masks=layer_masks)
        regions = regions_for(whole)
        layered = regions.warnings
        if mask is None:
            mask = mask_file_of(regions.area, params.mask_options)
        polarity_warned = False  # the layers say what is regenerated
    checked = _validated(plan, params, image, mask, polarity_warned)
    return dataclasses.replace(checked, warnings=checked.warnings + layered, mask=mask)


def _validated(
    plan: JobPlan,
    params: GenerationParams,
    image: Image.Image,
    mask: Image.Image | None,
    polarity_warned: bool,
) -> Checked:
    request = params.with_defaults().to_request(image=image, mask=mask)
    effective = engine.prepare_mask(request, edits=plan.edits)
    engine.check_fillable(plan.engine, effective)
    warned = []
    if polarity_warned and mask is not None and not params.outpaint:
        warned = _polarity_warnings(params, float((effective > 127).mean()))
    if plan.family is None:
        warnings = fill_engine_warnings(params, plan.engine)
        return Checked(plan, params.with_defaults(), warnings + warned)
    if eraser := plan.additions.get("eraser"):  # the adapter's own words and steps
        model_served_check(plan.model.name)
        own = plan.family.capabilities
        resolved = dataclasses.replace(
            params.with_defaults(),
            num_inference_steps=own.default_steps,
            guidance_scale=own.default_guidance,
        )
        warnings = fill_engine_warnings(params, plan.engine, eraser=eraser["name"])
        return Checked(plan, resolved, warnings + warned)
    if not params.prompt.strip():
        raise ClientError("A prompt is required for the diffusers engine.", field="prompt")
    engine.check_prompts(params.prompt, params.negative_prompt)
    resolved, warnings = params.for_family(plan.family, plan.model_name)
    if plan.model is not None:
        model_served_check(plan.model.name)
    return Checked(plan, resolved, warnings + warned)


def _polarity_warnings(params: GenerationParams, share: float) -> list[dict[str, str]]:
    """The answer's warning for a mask that selects ``share`` of the picture, past
    POLARITY_WARNING_SHARE: which colour this request's ``mask_mode`` regenerates, and the
    other."""
    if share <= POLARITY_WARNING_SHARE:
        return []
    white = (params.mask_mode == "white_inpaints") != params.invert_mask
    other = "black_inpaints" if params.mask_mode == "white_inpaints" else "white_inpaints"
    inverted = " and invert_mask" if params.invert_mask else ""
    return [
        {
            "field": "mask_mode",
            "message": f"The mask selects {share:.0%} of the picture to regenerate: with "
            f"mask_mode={params.mask_mode}{inverted} its {'white' if white else 'black'} pixels "
            "are regenerated. If it marks what to change in the other colour (the studio's "
            f"downloaded masks are white = regenerated), send mask_mode={other}.",
        }
    ]


def _mask_needed(plan: JobPlan, user: User) -> str | None:
    """A request without a mask or an outpaint asks to edit the whole picture by its prompt:
    an edit model (Qwen-Image-Edit, FLUX.1 Kontext) does that (None). Otherwise why a mask is
    needed, naming the models that can edit (``services.instructions`` may still find the
    mask from the prompt)."""
    if plan.edits:
        return None
    return (
        "A mask file is required unless outpaint is given, or an edit model edits the whole "
        f"picture by the prompt ({library.library_edit_models_hint(user)})"
    )


def fill_engine_warnings(
    params: GenerationParams, engine_name: str, *, eraser: str | None = None
) -> list[dict[str, str]]:
    """Each field a request sent that a fill engine (classical, LaMa) does not follow, named
    for the answer's ``warnings``: it fills the mask from the picture around it, with no
    diffusion model, so the words, the sampling and soft inpainting are not used. So for an
    ``eraser`` (erase mode's adapter, by name), which runs by its own words and steps."""
    default = GenerationParams()

    def given(field: str) -> bool:
        value = getattr(params, field)
        if isinstance(value, str):  # a prompt, or a choice such as speed
            return bool(value.strip()) and value != getattr(default, field)
        return value != getattr(default, field)

    sent = {field: given(field) for field in FILL_ENGINE_UNUSED}
    # What not following a field means, where it changes the result the client asked for.
    meaning = {"denoising_strength": ": the whole masked area is filled anew"}
    return [
        {
            "field": field,
            "message": (
                f"The erase adapter {eraser} removes what the mask covers by its own prompt "
                "and steps"
                if eraser
                else f"The {engine_name} engine fills the mask from the picture around it, "
                "with no diffusion model"
            )
            + f"; {field} was not used{meaning.get(field, '')}.",
        }
        for field, given in sent.items()
        if given
    ]


#: What a job that repaints every pixel from the prompt is, as its refusal says it, and what
#: the client may do instead (``generation_check_whole_picture``).
WHOLE_PICTURE = {
    "img2img": ("img2img without a mask repaints the whole picture from the prompt", ", or send "
                "a mask"),
    "txt2img": ("Text to image paints a new picture from the prompt alone", ""),
}  # fmt: skip


def generation_check_whole_picture(
    params: GenerationParams, *, field: str, kind: str = "img2img"
) -> None:
    """A job that repaints every pixel from the prompt (``kind``: a compatible API's img2img
    without a mask, or its text to image) needs a diffusion model: without one, a 400 on
    ``field`` that says so and what to install, not that a mask covers every pixel (the
    client sent none)."""
    engine_name = engine_config().choose(
        params.requested_engine, params.prompt, erase=params.mode == "erase"
    )
    if engine.runs_a_model(engine_name):
        return
    what, instead = WHOLE_PICTURE[kind]
    raise ClientError(
        f"{what}, which needs a diffusion model; this server runs none (the {engine_name} "
        "engine only fills a masked area). Install an SD 1.5 or SDXL model (copy it into the "
        f"models folder and scan the library){instead}.",
        field=field,
    )


def request_fingerprint(
    *,
    client: str,
    params: GenerationParams,
    files: tuple,
    webhook_url: str | None,
    extra: dict | None = None,
) -> str:
    """What makes two submissions the same request: the endpoint (client surface), every
    parameter, the uploaded bytes, the webhook and what the API records besides (``extra``:
    OpenAI's output format and compression, whose every variant a replay would otherwise make
    and store anew). An idempotency key replays only that."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [client, params.to_json(), webhook_url or "", extra or {}], sort_keys=True
        ).encode()
    )
    for upload in files:
        digest.update(b"\x00file:")
        if upload is not None:
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
    return digest.hexdigest()


def generation_replay(sender: Sender) -> Generation | None:
    """The generation ``sender``'s idempotency key already created, if this is the same
    request; a 422 if the key was used for a different one (another body, or another
    endpoint)."""
    if not sender.idempotency_key:
        return None
    existing = Generation.objects.filter(
        owner=sender.user, idempotency_key=sender.idempotency_key
    ).first()
    if existing is not None and existing.request_fingerprint != sender.fingerprint:
        raise ClientError(
            "This Idempotency-Key was already used for a different request (another body or "
            "another endpoint); use a new key for a new request.",
            field="Idempotency-Key",
            status=422,
        )
    return existing


def generation_store_once(
    sender: Sender, store: Callable[[], Generation]
) -> tuple[Generation, bool]:
    """``store()`` the new job, and whether it is new: when the same idempotency key raced
    with itself, the first one won and the loser (its rows rolled back) gets that one."""
    try:
        return store(), True
    except IntegrityError:
        existing = generation_replay(sender)
        if existing is None:
            raise
        return existing, False


def picture_job_store(
    sender: Sender,
    plan: JobPlan,
    params: GenerationParams,
    *,
    work: gate.Work,
    size: tuple[int, int],
    picture: Callable[[], Image.Image],
) -> Generation:
    """A job of one picture and no mask (a split, an upscale): the same request again is
    replayed; else the quota is checked before the picture is decoded (``picture()``, within
    the gate's ``work`` for ``size``), and the job is stored once."""
    existing = generation_replay(sender)
    if existing is not None:
        return existing
    quota_check(sender.user, lock=False)  # before the picture is decoded; again with the insert
    checked = Checked(plan, params, [])
    with PIXELS.doing(work, size, user=sender.user.pk):
        image = picture()
        return generation_store_once(sender, lambda: generation_store(sender, checked, image))[0]


@contextlib.contextmanager
def files_removed_on_rollback():
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
    sender: Sender,
    *,
    image_file,
    mask_file,
    params: GenerationParams,
    extra_metadata: dict | None = None,
    webhook_url: str | None = None,
    reference_files: tuple = (),
    max_queue_seconds: float | None = None,
    layer_files: tuple = (),
) -> Submission:
    """Validate the uploads, store them, create a queued generation and enqueue it on commit.
    ``reference_files``: reference pictures for an edit model, in order; ``layer_files``: the
    masks of ``params.layers``, in order.

    Preconditions: ``params`` passed the API's range checks. Raises ``GenerationError`` for
    client mistakes (bad files, mask mismatch, quota, an idempotency key reused for another
    request); nothing is stored in that case.
    """
    sender = sender.fingerprinted(
        params, (image_file, mask_file, *reference_files, *layer_files), webhook_url, extra_metadata
    )
    user = sender.user
    existing = generation_replay(sender)
    if existing is not None:
        return Submission(existing, created=False)
    if webhook_url:
        webhooks.validate_url(webhook_url)
    if len(reference_files) > MAX_REFERENCE_IMAGES:
        raise ClientError(
            f"At most {MAX_REFERENCE_IMAGES} reference pictures; this request sent "
            f"{len(reference_files)}.",
            field="reference_images",
        )
    quota_check(user, lock=False)  # before any picture is decoded; again below, with the insert
    plan = job_plan(params, len(reference_files), user)
    if len(layer_files) != len(params.layers or []):
        raise ClientError(
            f"{len(params.layers or [])} layers and {len(layer_files)} layer masks: each layer "
            "needs its mask.",
            field="layers",
        )
    layered = bool(layer_files)  # the layers' union is the mask when the request sends none
    if layered and mask_file is None:
        extra_metadata = {**(extra_metadata or {}), MASK_FROM_LAYERS: True}
    if not (mask_file or params.outpaint or layered) and (cannot := _mask_needed(plan, user)):
        found = instruction_to_mask(user=user, image_file=image_file, params=params, cannot=cannot)
        mask_file, params = found.mask_file, found.params
        extra_metadata = {**(extra_metadata or {}), "mask_source": found.mask_source}
        plan = job_plan(params, len(reference_files), user)  # the instruction's prompt now
    uploads = [
        ("image", image_file, IMAGE_FORMATS),
        *([("mask", mask_file, MASK_FORMATS)] if mask_file else []),
        *(("reference_images", upload, IMAGE_FORMATS) for upload in reference_files),
        *(("layers", upload, MASK_FORMATS) for upload in layer_files),
    ]
    files = [(read_upload(upload, field=f), f, formats) for f, upload, formats in uploads]
    sizes = [image_size(data, field=f, formats=formats) for data, f, formats in files]
    if layered and mask_file is None:  # the layers' union, made and stored as the mask
        sizes.append(sizes[0])

    def store() -> Generation:
        return generation_store(
            sender,
            checked,
            image,
            mask,
            references,
            layers,
            metadata=extra_metadata,
            webhook_url=webhook_url,
            max_queue_seconds=max_queue_seconds,
        )

    # Each picture decoded, its RGB copy and the stored PNG's encoder, through the web
    # process' gate (a layer's mask: decoded, its share of each pixel, its region).
    with PIXELS.doing(gate.JOB_UPLOADS, *sizes, user=user.pk):
        decoded = []
        for data, f, formats in files:  # the same bytes twice (an image its own mask): once
            earlier = zip((b for b, _, _ in files), decoded, strict=False)
            same = next((d for b, d in earlier if b == data), None)
            decoded.append(decode_image(data, field=f, formats=formats) if same is None else same)
        image, mask = decoded[0], (decoded[1] if mask_file else None)
        given = decoded[2:] if mask_file else decoded[1:]
        references, layers = given[: len(reference_files)], given[len(reference_files) :]
        # A native API's mask from a script (the studio page draws its own in its polarity).
        native = sender.client in (Generation.Client.API, Generation.Client.WEB)
        warned = native and not sender.interactive
        checked = _validate(
            plan, params, image, mask, polarity_warned=warned, layer_masks=tuple(layers)
        )
        mask = checked.mask
        generation, created = generation_store_once(sender, store)
    return Submission(generation, created=created)


def holds_quota() -> Q:
    """Jobs that count against their owner's quota: queued or running, and cancelled ones a
    live worker is still stopping (its heartbeat goes on until it lets them go:
    ``runs.Heartbeat``)."""
    live = timezone.now() - timedelta(seconds=settings.HEARTBEAT_TIMEOUT_SECONDS)
    return Q(status__in=Generation.ACTIVE) | Q(
        status=Generation.Status.CANCELLED, heartbeat_at__gte=live
    )


def size_words(count: int) -> str:
    """A number of bytes for people: "812 KB", "37.4 MB", "5.4 GB"."""
    if count >= 1e9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} KB"


def quota_check(user: User, *, lock: bool = True, jobs: int = 1) -> None:
    """Room for ``jobs`` more: at most N active generations per user, at most
    STORAGE_QUOTA_BYTES_PER_USER of pictures stored (0: no limit), and room in the quotas
    staff set of jobs and GPU-seconds an hour and a day (``usage.usage_quota_check``).
    ``lock``: take the user row's lock, in the transaction that inserts the job (it
    serialises concurrent POSTs); the early check, before any picture is decoded, only
    reads."""
    if lock:
        User.objects.select_for_update().filter(pk=user.pk).first()
    quota = settings.STORAGE_QUOTA_BYTES_PER_USER
    if quota:
        used, reserved = stored_bytes(user_id=user.pk), reserved_bytes(user_id=user.pk)
        if used + reserved >= quota:
            waiting = (
                f" (with {size_words(reserved)} kept for the outputs of your queued and "
                "running jobs)"
                if reserved
                else ""
            )
            raise ClientError(
                f"Your pictures take {size_words(used + reserved)}{waiting} of your "
                f"{size_words(quota)} of storage; delete generations you no longer need (on "
                "the history page, or DELETE /api/generations/<id>/) to make room.",
                status=403,
            )
    active = Generation.objects.filter(holds_quota(), owner=user).count()
    limit = settings.MAX_ACTIVE_GENERATIONS_PER_USER
    if active + jobs > limit:
        more = f" and this request makes {jobs}" if jobs > 1 else ""
        raise ClientError(
            f"You already have {active} generations queued or running{more} (the limit is "
            f"{limit}; a cancelled one counts until its worker has stopped it); wait for one to "
            "finish or cancel one.",
            status=429,
        )
    usage_quota_check(user)  # the jobs and GPU-seconds of the last hour and day


#: What the studio page's token is signed for (``studio_token``), and how long it works.
STUDIO_TOKEN_SALT = "dreamlayer.studio-lane"
STUDIO_TOKEN_SECONDS = 24 * 3600


def studio_token(user: User, session_key: str | None) -> str:
    """The token the studio page sends with its jobs (``X-DreamLayer-Studio``): a job of the
    page, not of a script that logged in with the user's password. It names the user and the
    log-in session (it ends with it)."""
    return signing.dumps({"user": user.pk, "session": session_key}, salt=STUDIO_TOKEN_SALT)


def studio_token_valid(token: str, user: User, session_key: str | None) -> bool:
    try:
        payload = signing.loads(token, salt=STUDIO_TOKEN_SALT, max_age=STUDIO_TOKEN_SECONDS)
    except signing.BadSignature:
        return False
    return bool(session_key) and payload == {"user": user.pk, "session": session_key}


def job_priority(sender: Sender) -> int:
    """A new job's lane in the queue: its key's priority, else its user's (staff set them),
    else a person at the studio above scripts and other services' clients: one job of the
    user's at a time in that lane (a person waits for their picture; a script that sends six
    at once from a session waits its turn with the API's jobs)."""
    if sender.api_key is not None and sender.api_key.job_priority is not None:
        return sender.api_key.job_priority
    if sender.user.job_priority is not None:
        return sender.user.job_priority
    if sender.interactive:
        in_lane = Generation.objects.filter(
            owner=sender.user,
            status__in=Generation.ACTIVE,
            priority=Generation.PRIORITY_INTERACTIVE,
        )
        if not in_lane.exists():
            return Generation.PRIORITY_INTERACTIVE
    return Generation.PRIORITY_BATCH


def generation_store(
    sender: Sender,
    checked: Checked,
    image: Image.Image,
    mask: Image.Image | None = None,
    references=(),
    layers=(),
    **insert,
) -> Generation:
    """A job's pictures stored and its row inserted (``checked``, ``generation_insert``'s other
    fields), in one transaction: the quota checked again with the insert, the files written
    removed if it rolls back."""
    user = sender.user
    with files_removed_on_rollback() as saved, transaction.atomic():
        quota_check(user)
        source = source_image_create(owner=user, image=image)
        saved += [f for f in (source.file, source.thumbnail) if f]
        mask_row = mask_create(owner=user, mask=mask) if mask is not None else None
        if mask_row is not None:
            saved += [mask_row.file, mask_row.thumbnail]
        reference_rows = [source_image_create(owner=user, image=r) for r in references]
        saved += [f for row in reference_rows for f in (row.file, row.thumbnail) if f]
        layer_rows = [mask_create(owner=user, mask=layer) for layer in layers]
        saved += [f for row in layer_rows for f in (row.file, row.thumbnail) if f]
        return generation_insert(
            sender,
            source=source,
            mask=mask_row,
            references=reference_rows,
            layers=layer_rows,
            checked=checked,
            **insert,
        )


#: Bytes an output may take in storage, per pixel (a PNG of RGB, at most: zlib stores what it
#: cannot compress): what a job reserves against its owner's quota until its outputs land.
OUTPUT_BYTES_PER_PIXEL = 3


def output_bytes_reserved(params: GenerationParams, source: SourceImage) -> int:
    """The bytes a job's outputs may take: its output size (an upscale's, a resize's, an
    outpaint's canvas, else the input's) times its samples, at OUTPUT_BYTES_PER_PIXEL. Three
    parallel 4x upscales took a user to 411 MB of a 150 MB quota when only stored bytes were
    counted."""
    if params.upscale:
        return OUTPUT_BYTES_PER_PIXEL * params.upscale["width"] * params.upscale["height"]
    width, height = source.width, source.height
    if params.resize:  # A1111's and OpenAI's size: the output is that size
        width, height = params.resize["width"], params.resize["height"]
    outpaint = params.outpaint or {}
    if outpaint.get("width") or outpaint.get("height"):
        width, height = outpaint.get("width") or width, outpaint.get("height") or height
    else:
        width += outpaint.get("left", 0) + outpaint.get("right", 0)
        height += outpaint.get("top", 0) + outpaint.get("bottom", 0)
    return OUTPUT_BYTES_PER_PIXEL * width * height * max(1, params.samples)


def generation_insert(
    sender: Sender,
    *,
    source: SourceImage,
    mask: Mask | None,
    checked: Checked,
    references=(),
    layers=(),
    metadata: dict | None = None,
    webhook_url: str | None = None,
    max_queue_seconds: float | None = None,
) -> Generation:
    """The job's row (``checked``: as it will run, its warnings in its metadata), queued once
    the transaction commits."""
    said = {"warnings": checked.warnings} if checked.warnings else {}
    if checked.params.mode == "erase":  # the answer names the remover that ran
        said["erase"] = {
            "remover": checked.plan.engine,
            "dilate_pixels": checked.params.dilate_pixels,
        }
        if eraser := checked.plan.additions.get("eraser"):
            said["erase"] |= {"adapter": eraser["name"], "model": checked.plan.model_name}
    generation = Generation.objects.create(
        reserved_bytes=output_bytes_reserved(checked.params, source),
        owner=sender.user,
        api_key=sender.api_key,
        client=sender.client,
        priority=job_priority(sender),
        max_queue_seconds=max_queue_seconds,
        source=source,
        mask=mask,
        prompt=checked.params.prompt,
        params=checked.params.to_json(),
        engine=checked.plan.engine,
        model_name=checked.plan.model_name,
        library_model=checked.plan.model,
        plan=checked.plan.additions,
        idempotency_key=sender.idempotency_key or None,
        request_fingerprint=sender.fingerprint,
        metadata={**(metadata or {}), **said},
        webhook_url=webhook_url or "",
    )
    GenerationReference.objects.bulk_create(
        GenerationReference(generation=generation, image=image, position=position)
        for position, image in enumerate(references)
    )
    GenerationLayer.objects.bulk_create(
        GenerationLayer(generation=generation, mask=mask, position=position)
        for position, mask in enumerate(layers)
    )
    transaction.on_commit(lambda: enqueue(generation))
    return generation


def generation_rerun(
    *, generation: Generation, user: User, client: str | None = None, interactive: bool = False
) -> Generation:
    """Queue the same inputs and parameters again, to give the same images: the seed it ran
    with (also when it asked for a random one), and the model it ran with (also when that was
    the default then). It keeps the original's key (while usable: its lane as staff set it
    now) and its client's lane: the studio lane only for a studio job re-run from a page
    (``interactive``)."""
    params = GenerationParams.from_json(generation.params)
    if params.seed is None and generation.seed is not None:
        params = dataclasses.replace(params, seed=generation.seed)
    ran = selectors.library_model_list().filter(pk=generation.library_model_id).first()
    if engine.runs_a_model(generation.engine) and ran is not None:  # by its name now
        params = dataclasses.replace(params, model=ran.name)
    references = stored_references(generation)
    layers = stored_layers(generation)
    if generation.is_upscale:  # the same picture and size; its upscaler still enabled
        upscaler = upscalers.library_upscaler_checked(generation.model_name, user)
        checked = Checked(JobPlan(generation.engine, upscaler), params, [])
    elif generation.is_split:  # the same picture and layers; its layer model still enabled
        chosen = layer_models.library_layer_model_checked(generation.model_name)
        checked = Checked(JobPlan(generation.engine, chosen.name), params, [])
    else:
        plan = job_plan(params, len(references), user)
        size = (generation.source.width, generation.source.height)
        # The stored input and mask decoded, through the web process' gate.
        with PIXELS.doing(gate.JOB_RERUN, size, user=user.pk):
            image, mask = open_stored(generation.source.file), stored_mask(generation)
            layer_masks = tuple(open_stored(row.file) for row in layers)
            checked = _validate(plan, params, image, mask, layer_masks=layer_masks)
    key = generation.api_key
    if key is not None and not api_key_still_usable(api_key_id=key.pk):
        key = None
    sender = Sender(
        user,
        client=client or generation.client,
        api_key=key,
        interactive=interactive and generation.client == Generation.Client.WEB,
    )
    with transaction.atomic():
        quota_check(user)
        return generation_insert(
            sender,
            source=generation.source,
            mask=generation.mask,
            references=references,
            layers=layers,
            checked=checked,
            metadata={k: v for k, v in generation.metadata.items() if k == MASK_FROM_LAYERS},
        )


def generation_repeat(*, generation: Generation, count: int, seed_step: int) -> list[Generation]:
    """``count`` more jobs of ``generation``'s stored input, mask, plan and parameters (no
    picture decoded again: they were checked with it), the k-th with its seed advanced by
    ``k * seed_step`` (a random seed stays random), inserted together with the quota checked
    for all of them. The jobs are a sequence (their metadata's ``sequence``: ``id``, the
    first's, ``length``, ``index``; ``generation`` is index 0), and each made here runs alone
    in its batch (``Generation.RUNS_ALONE``): the sequence runs in order, as AUTOMATIC1111's
    iterations do. (The first is marked after it was made: its request's fingerprint, which
    an idempotent replay compares, holds no sequence.)"""
    params = GenerationParams.from_json(generation.params)
    plan = JobPlan(
        generation.engine,
        generation.model_name,
        generation.library_model,
        additions=generation.plan or {},
    )
    sender = Sender(generation.owner, client=generation.client, api_key=generation.api_key)
    sequence = {"id": str(generation.pk), "length": count + 1}
    warnings = generation.metadata.get("warnings", [])
    with transaction.atomic():
        quota_check(generation.owner, jobs=count)
        first = Generation.objects.select_for_update().get(pk=generation.pk)
        first.metadata = {**first.metadata, "sequence": {**sequence, "index": 0}}
        first.save(update_fields=["metadata"])
        kept = {k: v for k, v in first.metadata.items() if k != "warnings"}
        return [
            generation_insert(
                sender,
                source=generation.source,
                mask=generation.mask,
                references=stored_references(generation),
                layers=stored_layers(generation),
                checked=Checked(
                    plan,
                    dataclasses.replace(
                        params,
                        seed=None if params.seed is None else params.seed + k * seed_step,
                    ),
                    warnings,
                ),
                metadata={
                    **kept,
                    "sequence": {**sequence, "index": k},
                    Generation.RUNS_ALONE: True,
                },
                webhook_url=generation.webhook_url or None,
            )
            for k in range(1, count + 1)
        ]


def generation_interrupt_sequence(*, user: User, skip: bool = False) -> Generation | None:
    """Interrupt the user's current job (``generation_interrupt_current``) and the jobs of its
    sequence still to come (``generation_repeat``); ``skip``: only the current job, the next
    of its sequence goes on. Jobs that finished keep their images. Returns the job
    interrupted, or None."""
    current = generation_interrupt_current(user=user)
    if current is None or skip:
        return current
    for job in selectors.generation_sequence_after(current):
        try:
            generation_cancel(generation=job)
        except ClientError:  # it finished in the meantime
            continue
    return current


def generation_move(*, generation: Generation, front: bool) -> int | None:
    """Staff move a queued job to the front (or the back) of its queue: a priority above (or
    below) every other queued job's there. Its new priority; None when it is not queued."""
    queued = scheduler.generation_queue(generation=generation)
    if generation.pk not in {job.pk for job in queued}:
        return None
    others = [job.priority for job in queued if job.pk != generation.pk] or [generation.priority]
    priority = max(others) + 1 if front else min(others) - 1
    moved = Generation.objects.filter(pk=generation.pk, status=Generation.Status.QUEUED).update(
        priority=priority
    )
    if not moved:
        return None
    generation.priority = priority
    told = publish_queue_places(generation)  # its queue's first jobs, itself among them
    if generation.pk not in told:  # moved to the back of a long queue
        publish(generation, status_event(generation), to_user=True)
    return priority


def generation_cancel(*, generation: Generation) -> None:
    """Cancel a queued or running generation; a running one stops within one step. The jobs
    behind a queued one are told their new place."""
    now = timezone.now()
    ended = {
        "status": Generation.Status.CANCELLED,
        "finished_at": now,
        "total_seconds": (now - generation.created_at).total_seconds(),
    }
    jobs = Generation.objects.filter(pk=generation.pk)
    was_queued = jobs.filter(status=Generation.Status.QUEUED).update(**ended)
    done = was_queued or jobs.filter(status=Generation.Status.RUNNING).update(**ended)
    if not done:
        generation.refresh_from_db()
        raise ClientError(
            f"The generation is already {generation.status}; only queued or running "
            "generations can be cancelled.",
            status=409,
        )
    generation.refresh_from_db()
    webhooks.schedule(generation)
    publish(generation, {"type": Event.CANCELLED, "id": str(generation.pk)})
    publish(generation, status_event(generation), to_user=True)
    if was_queued:
        publish_queue_places(generation)


def generation_interrupt_current(*, user: User) -> Generation | None:
    """Cancel the user's current job (``selectors.generation_current``), if any; one that ends
    while being interrupted is left as it ended. Returns the job interrupted, or None."""
    generation, _ = selectors.generation_current(user=user)
    if generation is None:
        return None
    try:
        generation_cancel(generation=generation)
    except ClientError:  # it finished in the meantime
        return None
    return generation


def generation_delete(*, generation: Generation) -> None:
    """Delete the generation, its output files, and its inputs unless another job uses them."""
    if generation.status in Generation.ACTIVE:
        Generation.objects.filter(pk=generation.pk, status__in=Generation.ACTIVE).update(
            status=Generation.Status.CANCELLED, error=Generation.DELETED_ERROR
        )
    source_id = generation.source_id
    masks = {generation.mask_id, *generation.layer_links.values_list("mask_id", flat=True)}
    pictures = {source_id, *generation.reference_links.values_list("image_id", flat=True)}
    gone = Generation(pk=generation.pk, owner_id=generation.owner_id)  # delete() clears pk
    with transaction.atomic():
        generation.delete()  # output rows cascade; django-cleanup deletes their files on commit
        SourceImage.objects.filter(pk__in=pictures).exclude(
            Q(generations__isnull=False) | Q(references__isnull=False)
        ).delete()
        Mask.objects.filter(pk__in=masks - {None}).exclude(
            Q(generations__isnull=False) | Q(layers__isnull=False)
        ).delete()
        # Clients waiting on the job (API requests, sockets) stop waiting at once.
        transaction.on_commit(
            lambda: publish(gone, {"type": Event.DELETED, "id": str(gone.pk)}, to_user=True)
        )
