"""Images, masks and generations. Files get server-generated names; deleting a row deletes
its file (django-cleanup), and ``services.generations.generation_delete`` removes orphaned
inputs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import slugify

from accounts.models import User

from .engine.engines import runs_a_model
from .engine.families import FAMILIES
from .engine.memory import CHOICES as MEMORY_PLANS
from .engine.parameters import FILL_ENGINES
from .engine.selection import FAMILY_LABELS as MASK_FAMILY_LABELS
from .engine.splitting import ENGINE as SPLIT_ENGINE
from .engine.splitting import LAYER_FAMILY, LAYER_FAMILY_LABEL
from .engine.upscale import ENGINE as UPSCALE_ENGINE
from .engine.upscale import summary as upscale_summary

#: The longest run of prompt words in a download's file name.
FILE_NAME_WORDS_CHARS = 40


def _server_name(folder: str) -> str:
    # The client's file name is never used.
    return f"{folder}/{uuid.uuid4().hex}.png"


def upload_source(instance: models.Model, filename: str) -> str:
    return _server_name("sources")


def upload_mask(instance: models.Model, filename: str) -> str:
    return _server_name("masks")


def upload_mask_thumbnail(instance: models.Model, filename: str) -> str:
    return _server_name("masks/thumbnails")


def upload_output(instance: models.Model, filename: str) -> str:
    return _server_name("outputs")


def upload_thumbnail(instance: models.Model, filename: str) -> str:
    # Sources' and outputs' thumbnails (engine.thumbnail_webp), each beside its own kind.
    folder = "sources" if isinstance(instance, SourceImage) else "outputs"
    return f"{folder}/thumbnails/{uuid.uuid4().hex}.webp"


def upload_derived(instance: models.Model, filename: str) -> str:
    # The server's own name, with the extension of the format the picture is in.
    extension = filename.rpartition(".")[2] if "." in filename else "png"
    return f"derived/{uuid.uuid4().hex}.{extension}"


class StoredImage(models.Model):
    """What every stored upload keeps: its owner, size and content hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="%(class)ss"
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    #: The bytes its files take in storage (a mask's thumbnail included): its owner's usage.
    stored_bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.sha256[:12]}"


class SourceImage(StoredImage):
    file = models.FileField(upload_to=upload_source, max_length=255)
    #: Made with the row (empty on rows stored before thumbnails existed: issue 52).
    thumbnail = models.FileField(upload_to=upload_thumbnail, max_length=255, blank=True)


class Mask(StoredImage):
    file = models.FileField(upload_to=upload_mask, max_length=255)
    thumbnail = models.FileField(upload_to=upload_mask_thumbnail, max_length=255)
    #: Whether a pixel of the file is transparent (its alpha then says what is regenerated):
    #: read when it is stored, so a page never decodes the mask to say so. None: stored before
    #: this was recorded (read at the first page that needs it).
    transparent = models.BooleanField(null=True)


class Generation(models.Model):
    """One job and its history entry."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class WebhookStatus(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    #: The queue's lanes (``scheduler.queue_order``): a higher priority is taken first, fair
    #: share between users within a lane. A person waiting in the studio goes ahead of
    #: scripts by default; staff set a user's or a key's own (``job_priority``).
    PRIORITY_INTERACTIVE = 10
    PRIORITY_BATCH = 0
    #: The ``error`` of a job being deleted: it is cancelled first (so the worker stops writing
    #: into it), and a client that reads it in that moment answers "deleted", not "cancelled".
    DELETED_ERROR = "The generation was deleted while this request waited for it."
    #: A ``metadata`` key: the job runs alone in its model batch (one of a sequence of jobs,
    #: such as AUTOMATIC1111's iterations, which run one after another).
    RUNS_ALONE = "runs_alone"

    class Client(models.TextChoices):
        WEB = "web", "Browser"
        API = "api", "API key"
        SD_INPAINT = "sd-inpaint", "SD inpainting API"
        MODELSLAB = "modelslab", "ModelsLab API"
        FOOOCUS = "fooocus", "Fooocus API"
        DEEPIMAGE = "deepimage", "deep-image.ai API"
        A1111 = "a1111", "AUTOMATIC1111 API"
        OPENAI = "openai", "OpenAI image edit API"
        CLI = "cli", "Command line"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generations",
    )
    client = models.CharField(max_length=16, choices=Client.choices, default=Client.API)
    source = models.ForeignKey(SourceImage, on_delete=models.PROTECT, related_name="generations")
    mask = models.ForeignKey(
        Mask, null=True, blank=True, on_delete=models.PROTECT, related_name="generations"
    )
    prompt = models.TextField(blank=True)
    #: Every validated request parameter (see ``inpainting.params.GenerationParams``).
    params = models.JSONField(default=dict)
    seed = models.BigIntegerField(null=True, blank=True, help_text="The seed actually used.")
    engine = models.CharField(max_length=32)
    model_name = models.CharField(max_length=255, blank=True)
    #: The job's plan (``services.plan``), resolved once when it was queued: the library model
    #: it runs (by id: a model renamed since still runs; NULL: a fill engine, the deployment's
    #: own model or a resampler) and, in ``plan``, its additions by id with their settings.
    library_model = models.ForeignKey(
        "LibraryModel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The library model the job runs (its name when queued: model name).",
    )
    plan = models.JSONField(
        default=dict,
        blank=True,
        help_text="The additions the job runs, by library id: LoRAs, ControlNet, IP-Adapter.",
    )
    worker = models.CharField(
        max_length=255, blank=True, help_text="The Celery worker that ran (or runs) the job."
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    webhook_status = models.CharField(max_length=16, blank=True, choices=WebhookStatus.choices)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_error = models.TextField(blank=True)
    priority = models.SmallIntegerField(
        default=0, help_text="Its lane in the queue: higher first (studio 10, API 0)."
    )
    max_queue_seconds = models.FloatField(
        null=True, blank=True, help_text="Refused with a message if still queued after this."
    )
    # NULL (not "") when absent, so the per-user unique constraint ignores it.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # sha256 of the endpoint, parameters, files and webhook of the request that used the key:
    # the key replays that request only (services.generations.request_fingerprint).
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # When the task message was last sent: a queued job whose message is older than
    # REAP_QUEUED_AFTER_SECONDS (a broker restart lost it) is sent again by the reaper.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # The worker running the job writes ``heartbeat_at`` every HEARTBEAT_SECONDS. A running job
    # whose heartbeat is older than HEARTBEAT_TIMEOUT_SECONDS lost its worker: a redelivered
    # message or the reaper takes it over with a new ``attempt_token``, and only the holder of
    # the current token may record the outcome (exactly once, even if the old one wakes up).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempt_token = models.CharField(max_length=32, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue_seconds = models.FloatField(null=True, blank=True)
    inference_seconds = models.FloatField(null=True, blank=True)
    total_seconds = models.FloatField(null=True, blank=True)
    #: The bytes its outputs may take, counted against its owner's storage quota while it is
    #: queued or running (``services.generations.quota_check``); its outputs count once made.
    reserved_bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="unique_idempotency_key_per_user",
            )
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            # An engine's pace, for the ETA every job's start sends (``selectors``: its last
            # succeeded jobs): read from here, not from a scan of every job that ever ran.
            models.Index(
                fields=["engine", "-finished_at"],
                condition=models.Q(status="succeeded"),
                name="generation_engine_pace",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def percent(self) -> float:
        return round(100.0 * self.step / self.total_steps, 1) if self.total_steps else 0.0

    @property
    def is_outpaint(self) -> bool:
        return bool((self.params or {}).get("outpaint"))

    @property
    def is_upscale(self) -> bool:
        return self.engine == UPSCALE_ENGINE

    @property
    def is_split(self) -> bool:
        """A picture split into layers (``services.splits``): its outputs are the layers."""
        return self.engine == SPLIT_ENGINE

    @property
    def ran_a_fill_engine(self) -> bool:
        """Whether a fill engine (classical, LaMa) ran it (or will): it follows no words and
        does no sampling, so no page shows its prompt or sampling settings
        (``engine.parameters.FILL_ENGINE_UNUSED``)."""
        return self.engine in FILL_ENGINES

    @property
    def runs_a_model(self) -> bool:
        """Whether its engine runs a diffusion model of the library (``engine.engines``)."""
        return runs_a_model(self.engine)

    @property
    def followed_prompt(self) -> str:
        """The prompt the job followed: none after a fill engine."""
        return "" if self.ran_a_fill_engine else self.prompt.strip()

    @property
    def description(self) -> str:
        """What the history calls this job: the prompt it followed, else what it does."""
        if self.is_upscale:
            return "Upscale to " + upscale_summary((self.params or {}).get("upscale") or {})
        if self.is_split:
            return f"Split into {((self.params or {}).get('split') or {}).get('layers')} layers"
        if self.followed_prompt:
            return self.followed_prompt
        if self.is_outpaint:
            return "Outpaint and object removal" if self.mask_id else "Outpaint"
        return "Object removal"

    def file_name(self, what: str | int, extension: str = "png") -> str:
        """The name a download of this job's files gets, for people:
        ``dreamlayer-<the prompt's first words, else removal or outpaint>-<what>.png``, where
        ``what`` is an output's seed, or "input", "mask", "regenerated" (a project: .zip)."""
        words = ""
        for word in slugify(self.prompt, allow_unicode=True).split("-"):
            joined = f"{words}-{word}" if words else word
            if len(joined) > FILE_NAME_WORDS_CHARS:
                words = words or word[:FILE_NAME_WORDS_CHARS]
                break
            words = joined
        if self.is_upscale:
            words = "upscale"
        elif self.is_split:
            words = "layers"
        elif not words:
            words = "outpaint" if self.is_outpaint else "removal"
        return f"dreamlayer-{words}-{what}.{extension}"


class GenerationReference(models.Model):
    """A reference picture of a generation (an edit model reads it beside the picture it
    edits: "put the chair of picture 2 in picture 1"), in the order the request gave them.
    The picture is a stored source image: a re-run refers to the same files."""

    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="reference_links"
    )
    image = models.ForeignKey(SourceImage, on_delete=models.PROTECT, related_name="references")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ("generation", "position")
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "position"], name="one_reference_per_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.generation_id} reference {self.position + 1}"


class GenerationLayer(models.Model):
    """A layer of a generation (issue 80): its mask as the request sent it (read with the
    job's mask rules), in the request's order, bottom up; its name and prompt are in the job's
    parameters (``GenerationParams.layers``, same order). A re-run refers to the same file."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="layer_links")
    mask = models.ForeignKey(Mask, on_delete=models.PROTECT, related_name="layers")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ("generation", "position")
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "position"], name="one_layer_per_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.generation_id} layer {self.position + 1}"


class GeneratedImage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    file = models.FileField(upload_to=upload_output, max_length=255)
    #: Made by the worker with the output (empty on rows stored before thumbnails existed).
    thumbnail = models.FileField(upload_to=upload_thumbnail, max_length=255, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    seed = models.BigIntegerField()
    stored_bytes = models.PositiveBigIntegerField(default=0)  # counts in its owner's usage

    class Meta:
        ordering = ("index",)
        constraints = [
            models.UniqueConstraint(fields=["generation", "index"], name="unique_image_index")
        ]

    def __str__(self) -> str:
        return f"{self.generation_id}/{self.index}"


class DerivedPicture(models.Model):
    """A picture made from a job's files (the picture of its regenerated area, its painted
    mask, an output in another format for a link), made once at its first request and kept
    beside the job: deleted with it (issue 52)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="derived")
    kind = models.CharField(max_length=64)
    file = models.FileField(upload_to=upload_derived, max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    stored_bytes = models.PositiveBigIntegerField(default=0)  # counts in its owner's usage

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["generation", "kind"], name="unique_derived_kind")
        ]

    def __str__(self) -> str:
        return f"{self.generation_id} {self.kind}"


class LibraryModelQuerySet(models.QuerySet):
    def checkpoints(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.CHECKPOINT)

    def loras(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.LORA)

    def controlnets(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.CONTROLNET)

    def mask_models(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.MASK)

    def upscalers(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.UPSCALER)

    def layer_models(self) -> LibraryModelQuerySet:
        return self.filter(kind=LibraryModel.Kind.LAYERS)


#: Room for a family's name (``flux2-klein-base`` is 16 characters).
FAMILY_MAX_LENGTH = 64
#: The upscalers' family (``details`` names the architecture and scale spandrel found).
SUPER_RESOLUTION = "super-resolution"


def family_labels() -> dict[str, str]:
    """Every family a library model may have, with its label: the engine's diffusion families
    (``engine.families``), the mask models' (``engine.selection``: sam2, sam3, rembg),
    super-resolution for the upscalers and Qwen-Image-Layered for the layer models. Read when
    asked, not stored as the field's choices: a new family needs no migration."""
    return {
        **{family.name: family.label for family in FAMILIES.values()},
        **MASK_FAMILY_LABELS,
        SUPER_RESOLUTION: "super-resolution",
        LAYER_FAMILY: LAYER_FAMILY_LABEL,
    }


def _known(value: str, known, what: str) -> None:
    if value not in known:
        raise ValidationError(f"Unknown {what} {value!r}; the {what}s: {', '.join(known)}.")


# The names a field may hold are checked by the code (validators), not stored as the field's
# choices: a new family, kind, layout or memory plan needs no migration.
def family_known(name: str) -> None:
    """A library model's family is one the code knows (``family_labels``)."""
    _known(name, family_labels(), "family")


def kind_known(kind: str) -> None:
    """A library model's kind is one of ``LibraryModel.Kind``."""
    _known(kind, LibraryModel.Kind.values, "kind")


def layout_known(layout: str) -> None:
    """A library model's layout is one of ``LibraryModel.Layout``."""
    _known(layout, LibraryModel.Layout.values, "layout")


def memory_plan_known(plan: str) -> None:
    """A library model's memory plan is one the engine has (``engine.memory.CHOICES``)."""
    _known(plan, MEMORY_PLANS, "memory plan")


def install_kind_known(kind: str) -> None:
    """An install's kind is a library kind or LaMa's file (``INSTALL_KINDS``)."""
    _known(kind, dict(INSTALL_KINDS), "install kind")


class LibraryModel(models.Model):
    """A file of the model library (recorded by the scan): a diffusion model (a diffusers
    folder or a single-file ``.safetensors`` checkpoint under ``MODELS_DIR``, or a Hugging
    Face cache entry), a LoRA (a ``.safetensors`` file under ``LORAS_DIR``), a ControlNet (a
    diffusers folder under ``CONTROLNETS_DIR``), a mask model (a SAM 2.1 or SAM 3 folder, or
    a rembg ``.onnx`` file, under ``MASK_MODELS_DIR``) or an upscaler (a super-resolution
    model's ``.safetensors`` or weights-only ``.pth`` file under ``UPSCALERS_DIR``) or a layer
    model (a Qwen-Image-Layered diffusers folder under ``LAYER_MODELS_DIR``) or an erase
    adapter (a folder of an edit model's LoRA and its prompt embedding under
    ``ERASERS_DIR``)."""

    class Kind(models.TextChoices):
        CHECKPOINT = "checkpoint", "diffusion model"
        LORA = "lora", "LoRA"
        CONTROLNET = "controlnet", "ControlNet"
        IP_ADAPTER = "ip-adapter", "IP-Adapter"
        MASK = "mask", "mask model"
        UPSCALER = "upscaler", "upscaler"
        LAYERS = "layers", "layer model"
        ERASER = "eraser", "erase adapter"

    class Layout(models.TextChoices):
        SINGLE_FILE = "single-file", "single file"
        DIFFUSERS = "diffusers", "diffusers folder"
        HF_CACHE = "hf-cache", "Hugging Face cache"
        TRANSFORMERS = "transformers", "transformers folder"
        GGUF = "gguf", "GGUF transformer (quantized)"
        ADAPTER = "adapter", "adapter folder"

    kind = models.CharField(max_length=16, validators=[kind_known], default=Kind.CHECKPOINT)
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=1024, help_text="Where the scan found it.")
    family = models.CharField(max_length=FAMILY_MAX_LENGTH, validators=[family_known])
    inpainting = models.BooleanField(
        default=False, help_text="A 9-channel inpainting UNet (else a base model; LoRAs: no)."
    )
    layout = models.CharField(max_length=16, validators=[layout_known])
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="Of the file (a folder: of its weights).")
    details = models.JSONField(
        default=dict, blank=True, help_text="An upscaler's architecture and scale, as scanned."
    )
    modified = models.FloatField(help_text="The files' newest modification time at the scan.")
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField("default", default=False)
    present = models.BooleanField(default=True, help_text="Found by the last scan.")
    licence = models.CharField(
        max_length=128,
        blank=True,
        help_text="As its install found it (a starter list entry or a model card).",
    )
    source = models.CharField(
        max_length=2000,
        blank=True,
        help_text="Where it was installed from (empty: copied by hand).",
    )
    memory_plan = models.CharField(
        max_length=32,
        blank=True,
        validators=[memory_plan_known],
        help_text="Where its weights live on a CUDA worker (fp8 storage, offloads); empty: "
        "MODEL_MEMORY_PLAN (auto: the fastest plan that fits).",
    )
    scanned_at = models.DateTimeField(auto_now=True)

    objects = LibraryModelQuerySet.as_manager()

    class Meta:
        ordering = ["kind", "family", "name"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="unique_library_name"),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="one_default_model",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def family_label(self) -> str:
        """The family for people ("Stable Diffusion XL"), or its name if the code lost it."""
        return family_labels().get(self.family, self.family)


#: What an install can be: a kind of the library, or the LaMa engine's ONNX file.
LAMA = "lama"
INSTALL_KINDS = [*LibraryModel.Kind.choices, (LAMA, "LaMa (the lama engine's .onnx)")]


class ModelInstall(models.Model):
    """A model being installed (or installed, failed, cancelled) from a Hugging Face repository
    or a URL, by the housekeeping worker (``services.installs``); progress is kept here and
    sent to the requester's websocket. Its states are a job's."""

    Status = Generation.Status
    ACTIVE = Generation.ACTIVE

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=2000, help_text="A repo id, a hub file URL or a URL.")
    revision = models.CharField(max_length=255, blank=True)
    subfolder = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, validators=[install_kind_known])
    name = models.CharField(max_length=255, help_text="Its name in the library.")
    starter = models.CharField(max_length=64, blank=True, help_text="Its starter list key.")
    licence = models.CharField(max_length=128, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_per_second = models.FloatField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def seconds_left(self) -> float | None:
        if not self.bytes_per_second or self.bytes_total is None:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.bytes_per_second)


class HubToken(models.Model):
    """The Hugging Face token staff set in the admin (one row), encrypted with the secret key
    (``services.installs.hub_token_set``); never shown again, never logged."""

    encrypted = models.TextField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Hugging Face token"

    def __str__(self) -> str:
        return "Hugging Face token (set)"


class A1111Options(models.Model):
    """A user's own AUTOMATIC1111 options (``POST /sdapi/v1/options``; A1111 keeps them for the
    whole server, DreamLayer per user): the checkpoint the user's A1111 jobs run when they name
    none. Another user's choice never changes what a job of this user runs."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="a1111_options",
    )
    checkpoint = models.ForeignKey(
        LibraryModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the deployment's default model.",
    )
    values = models.JSONField(
        default=dict, blank=True, help_text="The other options the user wrote (read back as is)."
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AUTOMATIC1111 options"
        verbose_name_plural = "AUTOMATIC1111 options"

    def __str__(self) -> str:
        return f"{self.user}: {self.checkpoint or 'the default model'}"


#: The kinds of the library whose use staff give to groups (``GroupAccess``); mask and layer
#: models are open to everyone.
ACCESS_KINDS = (
    LibraryModel.Kind.CHECKPOINT,
    LibraryModel.Kind.LORA,
    LibraryModel.Kind.CONTROLNET,
    LibraryModel.Kind.IP_ADAPTER,
    LibraryModel.Kind.UPSCALER,
)


def access_kinds_known(kinds: list) -> None:
    """A group's open kinds are kinds staff give access to (``ACCESS_KINDS``)."""
    if not isinstance(kinds, list):
        raise ValidationError("The open kinds are a list of kinds.")
    for kind in kinds:
        _known(kind, [str(k) for k in ACCESS_KINDS], "kind")


class GroupAccess(models.Model):
    """What the members of a group may see and run (issue 82): each kind of ``ACCESS_KINDS``
    either open (every entry of that kind) or only the entries listed. A user's access is the
    union of their groups' that have one; a user in no such group (and staff) may use
    everything: a server whose staff set none runs as before (``services.access``)."""

    group = models.OneToOneField(
        "auth.Group", on_delete=models.CASCADE, related_name="model_access"
    )
    open_kinds = models.JSONField(
        default=list,
        blank=True,
        validators=[access_kinds_known],
        help_text='The kinds every entry of which the group may use, e.g. ["lora"]; of the '
        "other kinds, only the entries listed.",
    )
    entries = models.ManyToManyField(
        LibraryModel,
        blank=True,
        related_name="granted_to",
        help_text="Models, LoRAs, ControlNets, IP-Adapters and upscalers the group may use.",
    )

    class Meta:
        verbose_name = "model access"
        verbose_name_plural = "model access"

    def __str__(self) -> str:
        return f"{self.group}: {', '.join(self.open_kinds) or 'listed entries only'}"


#: The windows a usage quota counts over, in seconds (``UsageQuota.window``).
QUOTA_WINDOWS = {"hour": 3600, "day": 86400}


def quota_window_known(window: str) -> None:
    _known(window, QUOTA_WINDOWS, "window")


class UsageQuota(models.Model):
    """How much a user, or each member of a group, may run in a window (issue 82): jobs and
    GPU-seconds (the engine's measured inference time) in the last hour or day. A user's
    own quota of a window decides; without one, the most generous of their groups'; without
    any, no limit. Staff are held only by a quota of their own (``services.usage``)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_quotas",
    )
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_quotas",
        help_text="Each member's limit (not the group's together).",
    )
    window = models.CharField(max_length=8, validators=[quota_window_known], default="hour")
    jobs = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    gpu_seconds = models.PositiveIntegerField(
        "GPU-seconds", null=True, blank=True, help_text="Empty: no limit."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=True) ^ models.Q(group__isnull=True),
                name="quota_of_a_user_or_a_group",
            ),
            models.UniqueConstraint(fields=["user", "window"], name="one_quota_a_user_window"),
            models.UniqueConstraint(fields=["group", "window"], name="one_quota_a_group_window"),
        ]

    def __str__(self) -> str:
        limits = [
            f"{self.jobs} jobs" if self.jobs is not None else "",
            f"{self.gpu_seconds} GPU-seconds" if self.gpu_seconds is not None else "",
        ]
        said = " and ".join(limit for limit in limits if limit) or "no limit"
        per = "an hour" if self.window == "hour" else f"a {self.window}"
        return f"{self.user or self.group}: {said} {per}"


class UserUsage(User):
    """Each user's usage, as the admin lists it (``admin.UserUsageAdmin``; no table)."""

    class Meta:
        proxy = True
        verbose_name = "usage by user"
        verbose_name_plural = "usage by user"


class GroupUsage(Group):
    """Each group's usage, its members' together (``admin.GroupUsageAdmin``; no table)."""

    class Meta:
        proxy = True
        verbose_name = "usage by group"
        verbose_name_plural = "usage by group"


def reserved_bytes(*, user_id) -> int:
    """The bytes a user's queued and running jobs have reserved for their outputs."""
    jobs = Generation.objects.filter(owner_id=user_id, status__in=Generation.ACTIVE)
    return jobs.aggregate(total=models.Sum("reserved_bytes"))["total"] or 0


def stored_bytes(*, user_id=None) -> int:
    """The bytes pictures take in storage (inputs, masks, outputs and the pictures derived
    from jobs; each row records its files' size when it is written): one user's, or (None)
    everyone's. The storage quota, the admin and /metrics read it."""
    holdings = (
        SourceImage.objects.all(),
        Mask.objects.all(),
        GeneratedImage.objects.all(),
        DerivedPicture.objects.all(),
    )
    if user_id is not None:
        holdings = (
            holdings[0].filter(owner_id=user_id),
            holdings[1].filter(owner_id=user_id),
            holdings[2].filter(generation__owner_id=user_id),
            holdings[3].filter(generation__owner_id=user_id),
        )
    # One query: each kind's sum (grouped by a constant, so one row even with no rows), all
    # four as UNION ALL. The quota check reads it twice for every job.
    totals = [
        rows.order_by()
        .annotate(every=models.Value(1))
        .values("every")
        .annotate(total=models.Sum("stored_bytes"))
        .values_list("total", flat=True)
        for rows in holdings
    ]
    return sum(total or 0 for total in totals[0].union(*totals[1:], all=True))
