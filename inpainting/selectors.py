"""Everything that reads generations for a user. Another user's rows do not exist (404)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from accounts.models import User

from .conf import lama_file
from .engine.parameters import FILL_ENGINE_UNUSED
from .models import ACCESS_KINDS, LAMA, Generation, GroupAccess, LibraryModel, ModelInstall
from .params import GenerationParams


def generation_list(*, user: User, include_all: bool = False) -> QuerySet[Generation]:
    """Newest first; staff may ask for everyone's with ``include_all``."""
    qs = Generation.objects.select_related("owner", "source", "mask").prefetch_related("images")
    if include_all and user.is_staff:
        return qs
    return qs.filter(owner=user)


def generation_get(
    *, user: User, generation_id: uuid.UUID | str, change: bool = False
) -> Generation | None:
    """The generation if ``user`` owns it, or is staff and only reads it (``change=False``);
    else None. Staff review everything but cancel, delete and re-run only their own. A job
    being deleted (cancelled with ``DELETED_ERROR``, its row about to go) is gone already: a
    client waiting on it is told "deleted" (404), never "cancelled"."""
    try:
        generation_id = uuid.UUID(str(generation_id))
    except ValueError:
        return None
    qs = Generation.objects.select_related("owner", "source", "mask").prefetch_related("images")
    if change or not user.is_staff:
        qs = qs.filter(owner=user)
    qs = qs.exclude(status=Generation.Status.CANCELLED, error=Generation.DELETED_ERROR)
    return qs.filter(pk=generation_id).first()


def generation_current(*, user: User) -> tuple[Generation | None, int]:
    """The user's own job a single-job client (AUTOMATIC1111's progress and interrupt) means:
    the running one that started first, else the queued one made first; and how many of the
    user's jobs are unfinished. Never another user's, staff included."""
    active = Generation.objects.filter(owner=user, status__in=Generation.ACTIVE)
    running = active.filter(status=Generation.Status.RUNNING).order_by("started_at", "created_at")
    current = running.first() or active.order_by("created_at").first()
    return current, active.count()


def generation_queue(*, user: User) -> tuple[int, int, Generation | None]:
    """The user's own queue as Fooocus-API's ``job-queue`` reports it: how many of their jobs
    are unfinished, how many finished, and the last one made."""
    mine = Generation.objects.filter(owner=user)
    active = mine.filter(status__in=Generation.ACTIVE).count()
    finished = mine.filter(status__in=Generation.TERMINAL).count()
    return active, finished, mine.order_by("-created_at").first()


def generation_sequence(generation: Generation, *, unfinished: bool = False) -> list[Generation]:
    """The jobs of ``generation``'s sequence (its metadata's ``sequence``, made by
    ``services.generations.generation_repeat``), in order (``unfinished``: those not ended);
    just ``generation`` for a job of no sequence."""
    sequence = (generation.metadata or {}).get("sequence")
    if not sequence:
        return [generation]
    jobs = Generation.objects.filter(
        owner_id=generation.owner_id, metadata__sequence__id=sequence["id"]
    )
    if unfinished:
        jobs = jobs.filter(status__in=Generation.ACTIVE)
    return sorted(jobs, key=lambda job: job.metadata["sequence"]["index"])


def generation_sequence_after(generation: Generation) -> list[Generation]:
    """The unfinished jobs of ``generation``'s sequence that come after it, in order."""
    index = ((generation.metadata or {}).get("sequence") or {}).get("index", 0)
    return [
        job
        for job in generation_sequence(generation, unfinished=True)
        if job.metadata.get("sequence", {}).get("index", 0) > index
    ]


def generation_status(*, generation_id: uuid.UUID | str) -> str | None:
    return Generation.objects.filter(pk=generation_id).values_list("status", flat=True).first()


@dataclass(frozen=True)
class Access:
    """What of the library a user may see and use (``access_of``): everything, or the kinds
    open to them and the entries listed for them (``models.GroupAccess``)."""

    everything: bool
    open_kinds: frozenset[str] = frozenset()
    entries: frozenset[int] = frozenset()

    def allows(self, model: LibraryModel) -> bool:
        return (
            self.everything
            or model.kind not in ACCESS_KINDS
            or model.kind in self.open_kinds
            or model.pk in self.entries
        )

    def only(self, rows: QuerySet[LibraryModel]) -> QuerySet[LibraryModel]:
        """``rows`` less what this access does not allow."""
        if self.everything:
            return rows
        return rows.filter(
            ~Q(kind__in=ACCESS_KINDS) | Q(kind__in=self.open_kinds) | Q(pk__in=self.entries)
        )


EVERYTHING = Access(everything=True)


def access_of(user: User | None) -> Access:
    """The union of the model access of ``user``'s groups that have one; everything for staff,
    for a user in no such group and where no user is known (a worker, ``manage.py``): until
    staff give a group its access, everyone may use everything."""
    if user is None or user.is_staff:
        return EVERYTHING
    rules = list(GroupAccess.objects.filter(group__user=user))
    if not rules:
        return EVERYTHING
    granted = GroupAccess.entries.through.objects.filter(groupaccess__in=rules)
    return Access(
        everything=False,
        open_kinds=frozenset(kind for rule in rules for kind in rule.open_kinds),
        entries=frozenset(granted.values_list("librarymodel_id", flat=True)),
    )


def _listed(rows: QuerySet[LibraryModel], user: User | None) -> QuerySet[LibraryModel]:
    """The enabled ``rows`` found by the last scan that ``user`` may use (None: all)."""
    return access_of(user).only(rows.filter(enabled=True, present=True))


def library_model_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled diffusion models found by the last scan (that ``user`` may run; None: all),
    the default first."""
    return _listed(LibraryModel.objects.checkpoints(), user).order_by(
        "-is_default", "family", "name"
    )


def library_lora_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled LoRAs found by the last scan (that ``user`` may use)."""
    return _listed(LibraryModel.objects.loras(), user).order_by("name")


def library_controlnet_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled ControlNets found by the last scan (that ``user`` may use)."""
    return _listed(LibraryModel.objects.controlnets(), user).order_by("name")


def library_ip_adapter_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled IP-Adapters found by the last scan (that ``user`` may use)."""
    return _listed(LibraryModel.objects.filter(kind=LibraryModel.Kind.IP_ADAPTER), user).order_by(
        "name"
    )


def library_eraser_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled erase adapters found by the last scan (open to everyone, as mask models
    are: the model one runs on is what access gives), by name."""
    return _listed(LibraryModel.objects.filter(kind=LibraryModel.Kind.ERASER), user).order_by(
        "name"
    )


def library_upscaler_list(user: User | None = None) -> QuerySet[LibraryModel]:
    """The enabled upscalers (super-resolution models) found by the last scan (that ``user``
    may use)."""
    return _listed(LibraryModel.objects.upscalers(), user).order_by("name")


def library_layer_model_list() -> QuerySet[LibraryModel]:
    """The enabled layer models (Qwen-Image-Layered folders) found by the last scan."""
    return LibraryModel.objects.layer_models().filter(enabled=True, present=True).order_by("name")


def library_mask_model_list() -> QuerySet[LibraryModel]:
    """The enabled mask models found by the last scan."""
    return LibraryModel.objects.mask_models().filter(enabled=True, present=True).order_by("name")


def generation_parameters(*, generation: Generation) -> list[tuple[str, str]]:
    """The job's parameters for people, (label, value), as the detail page and the admin show
    them: the engine row is the engine that ran (shown with its model elsewhere), and after a
    fill engine none of what it does not use (steps, guidance, scheduler, the model...)."""
    leave_out = ("engine", *(FILL_ENGINE_UNUSED if generation.ran_a_fill_engine else ()))
    return GenerationParams.from_json(generation.params).table(leave_out=leave_out)


def lama_install_state() -> dict | None:
    """For the studio's line about the remover: None while the lama engine has its file; else
    the LaMa install under way (``percent``: None until its size is known), if any."""
    if lama_file().is_file():
        return None
    running = (
        ModelInstall.objects.filter(kind=LAMA, status__in=ModelInstall.ACTIVE)
        .order_by("-created")
        .first()
    )
    if running is None:
        return {"installing": False, "percent": None}
    percent = round(100 * running.bytes_done / running.bytes_total) if running.bytes_total else None
    return {"installing": True, "percent": percent}
