"""Everything that reads generations for a user. Another user's rows do not exist (404)."""

from __future__ import annotations

import heapq
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User

from .conf import lama_file
from .engine.engines import runs_a_model
from .engine.parameters import FILL_ENGINE_UNUSED
from .models import LAMA, Generation, LibraryModel, ModelInstall
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


# --- the queue's order ----------------------------------------------------------------------
#
# Among queued jobs a worker takes the next of the user who has had the least GPU time lately
# (round-robin by user, weighted by each job's cost), within the highest priority lane that
# has a job; a user's own jobs go by priority, then oldest first. The same order gives the
# position and ETA a user sees (``generation_queue_position``, ``generation_eta_seconds``).

#: A job's cost per megapixel and step for a denoiser of a billion parameters; engines with
#: no steps (classical fill, LaMa, upscalers) cost this much per megapixel.
FILL_COST_PER_MEGAPIXEL = 0.05


def generation_in_model_queue(generation: Generation) -> bool:
    """Whether the job goes to its library model's own queue (which only the workers serving
    the model consume) rather than the queue every inference worker consumes."""
    return (
        runs_a_model(generation.engine)
        and LibraryModel.objects.checkpoints().filter(name=generation.model_name).exists()
    )


def _queued_in(model_name: str | None) -> QuerySet[Generation]:
    """The queued jobs of library model ``model_name``'s queue, or of the queue every
    inference worker consumes (None)."""
    queued = Generation.objects.filter(status=Generation.Status.QUEUED)
    if model_name is not None:
        return queued.filter(engine="diffusers", model_name=model_name)
    # The library's names as a subquery: one query, not two.
    names = LibraryModel.objects.checkpoints().values("name")
    return queued.exclude(engine="diffusers", model_name__in=names)


def _queue_mates(generation: Generation) -> QuerySet[Generation]:
    """The queued jobs of ``generation``'s queue, itself included if queued."""
    in_model_queue = generation_in_model_queue(generation)
    return _queued_in(generation.model_name if in_model_queue else None)


def _billions(model_names: set[str]) -> dict[str, float]:
    """The denoiser's parameters (billions) of each library model, from its scanned parts."""
    rows = LibraryModel.objects.checkpoints().filter(name__in=model_names)
    return {row.name: (row.details.get("parts") or {}).get("denoiser", 2e9) / 2e9 for row in rows}


#: The fields ``generation_costs`` reads: the readings that only cost jobs load no more.
COST_FIELDS = ("engine", "model_name", "params", "source", "source__width", "source__height")


def generation_costs(jobs: list[Generation]) -> dict:
    """Each job's expected cost (``pk`` -> units): steps x megapixels x the denoiser's
    billions of parameters for a diffusion model, megapixels x FILL_COST_PER_MEGAPIXEL for the
    engines without steps. The pixels are the input's, an upscale's its output's (a 4x upscale
    makes 16 times its input: priced by its input, six of them took 91 % of a worker's minute
    from a user of small fills)."""
    billions = _billions({job.model_name for job in jobs if runs_a_model(job.engine)})
    costs = {}
    for job in jobs:
        megapixels = job.source.width * job.source.height / 1e6 if job.source_id else 1.0
        if job.is_upscale and (made := job.params.get("upscale")):
            megapixels = made["width"] * made["height"] / 1e6
        if runs_a_model(job.engine):
            # A stored job's steps are resolved (its family's default where it named none).
            steps = GenerationParams.from_json(job.params).with_defaults().num_inference_steps
            costs[job.pk] = steps * megapixels * billions.get(job.model_name, 1.0)
        else:
            costs[job.pk] = megapixels * FILL_COST_PER_MEGAPIXEL
    return costs


def _recent_use(owners: set[int]) -> dict[int, float]:
    """The cost of each user's jobs that ran within FAIR_SHARE_WINDOW_SECONDS (running now,
    or finished in the window)."""
    since = timezone.now() - timedelta(seconds=settings.FAIR_SHARE_WINDOW_SECONDS)
    ran = list(
        Generation.objects.filter(owner_id__in=owners, started_at__isnull=False)
        .filter(Q(status=Generation.Status.RUNNING) | Q(finished_at__gte=since))
        .select_related("source")
        .only("owner_id", *COST_FIELDS)
    )
    use = dict.fromkeys(owners, 0.0)
    costs = generation_costs(ran)
    for job in ran:
        use[job.owner_id] += costs[job.pk]
    return use


def queue_order(jobs: list[Generation]) -> list[Generation]:
    """``jobs`` (queued, of one queue) in the order workers take them: the highest priority
    lane first; in it, the head of the user with the least use (recent, plus what the order
    gives them meanwhile), the oldest head on a tie; a user's jobs by priority, then age."""
    return _order_and_costs(jobs)[0]


def _order_and_costs(jobs: list[Generation]) -> tuple[list[Generation], dict]:
    """``queue_order``'s order, and the jobs' costs (``generation_costs``) it was made from:
    the places read them again (``_places``), not from the database."""
    costs = generation_costs(jobs)
    owners = {job.owner_id for job in jobs}
    # Use only orders users among themselves: one user's line goes by priority and age alone.
    use = _recent_use(owners) if len(owners) > 1 else dict.fromkeys(owners, 0.0)
    lines: dict[int, list[Generation]] = {}
    for job in sorted(jobs, key=lambda j: (-j.priority, j.created_at)):
        lines.setdefault(job.owner_id, []).append(job)
    heads = [
        (-line[0].priority, use[owner], line[0].created_at, owner) for owner, line in lines.items()
    ]
    heapq.heapify(heads)
    order = []
    while heads:
        _, used, _, owner = heapq.heappop(heads)
        job = lines[owner].pop(0)
        order.append(job)
        used += costs[job.pk]
        if lines[owner]:
            head = lines[owner][0]
            heapq.heappush(heads, (-head.priority, used, head.created_at, owner))
    return order, costs


def generation_queue(*, generation: Generation) -> list[Generation]:
    """The queued jobs of ``generation``'s queue in the order workers take them."""
    return _queue_of(generation)[0]


def _queue_of(generation: Generation) -> tuple[list[Generation], dict]:
    """``generation_queue``'s order and its jobs' costs."""
    return _order_and_costs(list(_queue_mates(generation).select_related("source")))


def generation_queue_of_model(*, model_name: str | None) -> list[Generation]:
    """The queued jobs of library model ``model_name``'s queue (None: the queue every
    inference worker consumes) in the order workers take them."""
    return queue_order(list(_queued_in(model_name).select_related("source")))


def generation_queue_position(*, generation: Generation) -> int | None:
    """1 = next to run in its queue; None when the generation is not queued."""
    if generation.status != Generation.Status.QUEUED:
        return None
    order = [job.pk for job in generation_queue(generation=generation)]
    return order.index(generation.pk) + 1 if generation.pk in order else None


def generation_status(*, generation_id: uuid.UUID | str) -> str | None:
    return Generation.objects.filter(pk=generation_id).values_list("status", flat=True).first()


def _seconds_per_cost(engine: str, sample: int = 20) -> float | None:
    """The seconds a unit of cost took in the last ``sample`` jobs of ``engine`` (None before
    any ran)."""
    recent = list(
        Generation.objects.filter(
            status=Generation.Status.SUCCEEDED, engine=engine, inference_seconds__isnull=False
        )
        .select_related("source")
        .only("inference_seconds", *COST_FIELDS)
        .order_by("-finished_at")[:sample]
    )
    if not recent:
        return None
    costs = generation_costs(recent)
    return sum(job.inference_seconds for job in recent) / max(sum(costs.values()), 1e-9)


def generation_queue_place(*, generation: Generation) -> tuple[int | None, float | None]:
    """``(queue_position, eta_seconds)`` from one reading of its queue's order: the position
    (1 = next; None unless queued) and when the job should be done: for a queued job, the cost
    of the jobs ahead of it and its own, at the seconds per unit of cost recent jobs of its
    engine took; for a running one, what is left of its own; 0 once it ended; None before any
    job of its engine ran."""
    if generation.status not in Generation.ACTIVE:
        return None, 0.0
    per_unit = _seconds_per_cost(generation.engine)
    if generation.status == Generation.Status.RUNNING:
        if per_unit is None:
            return None, None
        done = generation.step / generation.total_steps if generation.total_steps else 0.0
        own = generation_costs([generation])[generation.pk]
        return None, round(per_unit * own * (1.0 - done), 2)
    order, costs = _queue_of(generation)
    ids = [job.pk for job in order]
    if generation.pk not in ids:
        return None, None
    position = ids.index(generation.pk) + 1
    return _places(order[:position], costs, {generation.engine: per_unit})[-1][1:]


def _places(
    order: list[Generation], costs: dict, pace: dict
) -> list[tuple[Generation, int, float | None]]:
    """``order``'s jobs (a queue's order from its front) with their ``(position, eta)``: the
    cost of the jobs ahead and the job's own (``costs``, the order's), at the seconds per unit
    of cost recent jobs of the job's engine took (``pace``, by engine, filled in as engines
    come)."""
    places, ahead = [], 0.0
    for position, job in enumerate(order, start=1):
        ahead += costs[job.pk]
        if job.engine not in pace:
            pace[job.engine] = _seconds_per_cost(job.engine)
        per_unit = pace[job.engine]
        places.append((job, position, None if per_unit is None else round(per_unit * ahead, 2)))
    return places


def generation_queue_places(
    *, generation: Generation, limit: int
) -> list[tuple[Generation, int, float | None]]:
    """The first ``limit`` waiting jobs of ``generation``'s queue (itself among them only if
    queued), each with its ``(queue_position, eta_seconds)`` as ``generation_queue_place``
    gives it, from ONE reading of the queue's order (not one per job)."""
    order, costs = _queue_of(generation)
    return _places(order[:limit], costs, {})


def generation_eta_seconds(*, generation: Generation) -> float | None:
    """``generation_queue_place``'s ETA alone."""
    return generation_queue_place(generation=generation)[1]


def library_model_list() -> QuerySet[LibraryModel]:
    """The enabled diffusion models found by the last scan, the default first."""
    return (
        LibraryModel.objects.checkpoints()
        .filter(enabled=True, present=True)
        .order_by("-is_default", "family", "name")
    )


def library_lora_list() -> QuerySet[LibraryModel]:
    """The enabled LoRAs found by the last scan."""
    return LibraryModel.objects.loras().filter(enabled=True, present=True).order_by("name")


def library_controlnet_list() -> QuerySet[LibraryModel]:
    """The enabled ControlNets found by the last scan."""
    return LibraryModel.objects.controlnets().filter(enabled=True, present=True).order_by("name")


def library_ip_adapter_list() -> QuerySet[LibraryModel]:
    """The enabled IP-Adapters found by the last scan."""
    return LibraryModel.objects.filter(
        kind=LibraryModel.Kind.IP_ADAPTER, enabled=True, present=True
    ).order_by("name")


def library_upscaler_list() -> QuerySet[LibraryModel]:
    """The enabled upscalers (super-resolution models) found by the last scan."""
    return LibraryModel.objects.upscalers().filter(enabled=True, present=True).order_by("name")


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
