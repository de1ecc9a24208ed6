"""The queue's order: which queued job a worker takes next, and the place and ETA each user
sees (the fair-share scheduler).

Among queued jobs a worker takes the next of the user who has had the least GPU time lately
(round-robin by user, weighted by each job's cost), within the highest priority lane that
has a job; a user's own jobs go by priority, then oldest first. The same order gives the
position and ETA a user sees (``generation_queue_position``, ``generation_eta_seconds``).
"""

from __future__ import annotations

import heapq
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from .engine.engines import DIFFUSION_ENGINES, runs_a_model
from .models import Generation, LibraryModel
from .params import GenerationParams

#: A job's cost per megapixel and step for a denoiser of a billion parameters; engines with
#: no steps (classical fill, LaMa, upscalers) cost this much per megapixel.
FILL_COST_PER_MEGAPIXEL = 0.05


def generation_in_model_queue(generation: Generation) -> bool:
    """Whether the job goes to its library model's own queue (which only the workers serving
    the model consume) rather than the queue every inference worker consumes."""
    return runs_a_model(generation.engine) and generation.library_model_id is not None


def _queued_in(model_id: int | None) -> QuerySet[Generation]:
    """The queued jobs of library model ``model_id``'s queue, or of the queue every
    inference worker consumes (None)."""
    queued = Generation.objects.filter(status=Generation.Status.QUEUED)
    if model_id is not None:
        return queued.filter(engine__in=DIFFUSION_ENGINES, library_model_id=model_id)
    return queued.exclude(engine__in=DIFFUSION_ENGINES, library_model__isnull=False)


def _queue_mates(generation: Generation) -> QuerySet[Generation]:
    """The queued jobs of ``generation``'s queue, itself included if queued."""
    in_model_queue = generation_in_model_queue(generation)
    return _queued_in(generation.library_model_id if in_model_queue else None)


def _billions(model_ids: set[int]) -> dict[int, float]:
    """The denoiser's parameters (billions) of each library model, from its scanned parts."""
    rows = LibraryModel.objects.checkpoints().filter(pk__in=model_ids)
    return {row.pk: (row.details.get("parts") or {}).get("denoiser", 2e9) / 2e9 for row in rows}


#: The fields ``generation_costs`` reads: the readings that only cost jobs load no more.
COST_FIELDS = ("engine", "library_model", "params", "source", "source__width", "source__height")


def generation_costs(jobs: list[Generation]) -> dict:
    """Each job's expected cost (``pk`` -> units): steps x megapixels x the denoiser's
    billions of parameters for a diffusion model, megapixels x FILL_COST_PER_MEGAPIXEL for the
    engines without steps. The pixels are the input's, an upscale's its output's (a 4x upscale
    makes 16 times its input: priced by its input, six of them took 91 % of a worker's minute
    from a user of small fills)."""
    billions = _billions({job.library_model_id for job in jobs if runs_a_model(job.engine)})
    costs = {}
    for job in jobs:
        megapixels = job.source.width * job.source.height / 1e6 if job.source_id else 1.0
        if job.is_upscale and (made := job.params.get("upscale")):
            megapixels = made["width"] * made["height"] / 1e6
        if runs_a_model(job.engine):
            # A stored job's steps are resolved (its family's default where it named none).
            steps = GenerationParams.from_json(job.params).with_defaults().num_inference_steps
            costs[job.pk] = steps * megapixels * billions.get(job.library_model_id, 1.0)
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


def generation_queue_of_model(*, model_id: int | None) -> list[Generation]:
    """The queued jobs of library model ``model_id``'s queue (None: the queue every
    inference worker consumes) in the order workers take them."""
    return queue_order(list(_queued_in(model_id).select_related("source")))


def generation_queue_position(*, generation: Generation) -> int | None:
    """1 = next to run in its queue; None when the generation is not queued."""
    if generation.status != Generation.Status.QUEUED:
        return None
    order = [job.pk for job in generation_queue(generation=generation)]
    return order.index(generation.pk) + 1 if generation.pk in order else None


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
