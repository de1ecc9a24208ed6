"""The queue's order: which queued job a worker takes next, and the place and ETA each user
sees (the fair-share scheduler).

Among queued jobs a worker takes the next of the user who has had the least GPU time lately
(round-robin by user, weighted by each job's cost), within the highest priority lane that
has a job; a user's own jobs go by priority, then oldest first. The same order gives the
position and ETA a user sees (``generation_queue_position``, ``generation_eta_seconds``).
"""

from __future__ import annotations

import heapq
import statistics
from dataclasses import dataclass
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


def _queued_in(
    model_id: int | None, status: str = Generation.Status.QUEUED
) -> QuerySet[Generation]:
    """The queued jobs of library model ``model_id``'s queue, or of the queue every
    inference worker consumes (None); ``status``: its jobs in another state (running)."""
    queued = Generation.objects.filter(status=status)
    if model_id is not None:
        return queued.filter(engine__in=DIFFUSION_ENGINES, library_model_id=model_id)
    return queued.exclude(engine__in=DIFFUSION_ENGINES, library_model__isnull=False)


def _queue_key(generation: Generation) -> int | None:
    """The library model whose queue ``generation`` is in (None: the generic queue)."""
    return generation.library_model_id if generation_in_model_queue(generation) else None


def _queue_mates(generation: Generation) -> QuerySet[Generation]:
    """The queued jobs of ``generation``'s queue, itself included if queued."""
    return _queued_in(_queue_key(generation))


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


#: The finished jobs of an engine and model whose times the ETAs are learnt from.
PACE_SAMPLE = 20
#: A running job past its expected time is taken to need this share of it still.
OVERDUE_SHARE = 0.1


@dataclass(frozen=True)
class Pace:
    """How long a job of an engine and model takes on a worker, learnt from recent jobs: its
    run, claimed to stored (its model's load, the pictures decoded, the run, the outputs
    encoded and stored), ``fixed`` seconds plus ``per_unit`` a unit of its cost
    (``generation_costs``); and ``dispatch``, from when its worker could take it to its
    claim (the message's way, a worker's start). Counted from the model's run alone, a
    4000x3000 photo's job (18.6 s of its answer stored after its last step) was told 7 to 19
    times too short."""

    fixed: float
    per_unit: float
    #: The dispatch of a job queued while its worker was idle, and of one it took next.
    dispatch_idle: float
    dispatch_next: float

    def run(self, cost: float) -> float:
        return self.fixed + self.per_unit * cost


def _pace(engine: str, model_id: int | None) -> Pace | None:
    """The pace of ``engine`` with library model ``model_id`` (None: none) from its last
    PACE_SAMPLE finished jobs: the line of run seconds against cost that one slow job (a
    worker's first, a busy minute) does not pull (Theil-Sen: the median of the slopes between
    jobs of different costs, then the median of what each job leaves for the fixed part;
    neither below 0; with one size of job only, half of its time taken as fixed), and the
    median dispatch. None before any ran."""
    recent = list(
        Generation.objects.filter(
            status=Generation.Status.SUCCEEDED,
            engine=engine,
            library_model_id=model_id,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .select_related("source")
        .only("created_at", "started_at", "finished_at", "worker", *COST_FIELDS)
        .order_by("-finished_at")[:PACE_SAMPLE]
    )
    if not recent:
        return None
    costs = generation_costs(recent)
    points = [(costs[job.pk], (job.finished_at - job.started_at).total_seconds()) for job in recent]
    idle, following = _dispatch_seconds(recent)
    dispatch = (
        statistics.median(idle) if idle else 0.0,
        statistics.median(following) if following else 0.0,
    )
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if abs(x2 - x1) > 1e-9
    ]
    if not slopes:  # one size: no slope to learn
        cost = statistics.median(x for x, _ in points)
        seconds = statistics.median(y for _, y in points)
        return Pace(seconds / 2, seconds / 2 / max(cost, 1e-9), *dispatch)
    slope = max(statistics.median(slopes), 0.0)
    fixed = max(statistics.median(y - slope * x for x, y in points), 0.0)
    return Pace(fixed, slope, *dispatch)


def _dispatch_seconds(jobs: list[Generation]) -> tuple[list[float], list[float]]:
    """The finished jobs' dispatches, from when each could start to its claim: of those
    queued while their worker was idle (from being queued), and of those it took next (from
    its previous job's end)."""
    free: dict[str, object] = {}
    idle, following = [], []
    for job in sorted(jobs, key=lambda j: j.finished_at):
        before = free.get(job.worker)
        waited = before is not None and before > job.created_at
        since = before if waited else job.created_at
        (following if waited else idle).append(max((job.started_at - since).total_seconds(), 0))
        free[job.worker] = job.finished_at
    return idle, following


def _paces(job: Generation, paces: dict) -> Pace | None:
    """``job``'s engine and model's pace (``paces``: each read once, filled in as they come)."""
    key = (job.engine, job.library_model_id)
    if key not in paces:
        paces[key] = _pace(*key)
    return paces[key]


def _paced(job: Generation, cost: float, paces: dict, *, idle: bool) -> float | None:
    """The seconds a queued ``job`` (of ``cost``) should take once its worker is free: its
    dispatch (``idle``: its worker has nothing to run before it) and its run."""
    pace = _paces(job, paces)
    if pace is None:
        return None
    return (pace.dispatch_idle if idle else pace.dispatch_next) + pace.run(cost)


def _time_left(job: Generation, cost: float, paces: dict) -> float | None:
    """What a running job should still take: its run's expected time less what it ran, or
    OVERDUE_SHARE of it once it ran past that."""
    pace = _paces(job, paces)
    if pace is None:
        return None
    expected = pace.run(cost)
    if job.started_at is None:
        return expected
    ran = (timezone.now() - job.started_at).total_seconds()
    return max(expected - ran, expected * OVERDUE_SHARE)


def generation_queue_place(*, generation: Generation) -> tuple[int | None, float | None]:
    """``(queue_position, eta_seconds)`` from one reading of its queue: the position (1 =
    next; None unless queued) and in how many seconds the job should be done (its outputs
    stored): for a queued job, what the jobs its queue's workers run now still take, and the
    whole time of each job ahead of it in the order the workers take them and its own, shared
    by as many workers as run its queue's jobs now; for a running one, what it still takes;
    0 once it ended; None before any job of its engine and model finished."""
    if generation.status not in Generation.ACTIVE:
        return None, 0.0
    if generation.status == Generation.Status.RUNNING:
        cost = generation_costs([generation])[generation.pk]
        left = _time_left(generation, cost, {})
        return None, None if left is None else round(left, 2)
    order, costs = _queue_of(generation)
    ids = [job.pk for job in order]
    if generation.pk not in ids:  # claimed (or ended) since its status was read
        generation.refresh_from_db(fields=["status", "started_at", "step", "total_steps"])
        if generation.status != Generation.Status.QUEUED:
            return generation_queue_place(generation=generation)
        return None, None
    position = ids.index(generation.pk) + 1
    return _places(order[:position], costs, _queue_key(generation))[-1][1:]


def _places(
    order: list[Generation], costs: dict, queue: int | None
) -> list[tuple[Generation, int, float | None]]:
    """``order``'s jobs (queue ``queue``'s order from its front: ``_queue_key``) with their
    ``(position, eta)``: the time its running jobs still take, then each job's whole time at
    its engine and model's pace (``_paced``), in order, shared by as many workers as run the
    queue's jobs now (at least one)."""
    running = list(
        _queued_in(queue, Generation.Status.RUNNING)
        .select_related("source")
        .only("started_at", *COST_FIELDS)
    )
    paces: dict = {}
    running_costs = generation_costs(running)
    # A job claimed between the reading of ``order`` and this one is in both: it counts once,
    # as queued (its whole time: it has only just started).
    queued = {job.pk for job in order}
    lefts = [
        _time_left(job, running_costs[job.pk], paces) for job in running if job.pk not in queued
    ]
    workers = max(len(running), 1)
    ahead: float | None = sum(lefts) if None not in lefts else None
    places = []
    for position, job in enumerate(order, start=1):
        own = _paced(job, costs[job.pk], paces, idle=position == 1 and not running)
        ahead = None if ahead is None or own is None else ahead + own
        places.append((job, position, None if ahead is None else round(ahead / workers, 2)))
    return places


def generation_queue_places(
    *, generation: Generation, limit: int | None
) -> list[tuple[Generation, int, float | None]]:
    """The first ``limit`` waiting jobs of ``generation``'s queue (itself among them only if
    queued), each with its ``(queue_position, eta_seconds)`` as ``generation_queue_place``
    gives it, from ONE reading of the queue's order (not one per job)."""
    order, costs = _queue_of(generation)
    return _places(order[:limit], costs, _queue_key(generation))


def generation_eta_seconds(*, generation: Generation) -> float | None:
    """``generation_queue_place``'s ETA alone."""
    return generation_queue_place(generation=generation)[1]
