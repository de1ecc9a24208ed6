"""The queue's fair-share order (``scheduler.queue_order``) on hand-made rows, no worker: a
user's share is the COST of their recent jobs (steps x megapixels x the model's billions of
parameters), not their count, and only what ran within FAIR_SHARE_WINDOW_SECONDS counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inpainting import progress, scheduler
from inpainting.models import Generation, LibraryModel, SourceImage
from inpainting.progress import status_event
from inpainting.services import queue

pytestmark = pytest.mark.django_db

#: Denoisers of 24 and 2 billion parameters (the scan records their bytes in the dtype they run
#: in: 2 bytes a parameter): a job of the big one costs 12 times a job of the small one.
BIG, SMALL = "big-model", "small-model"


@pytest.fixture
def models():
    for name, parameters in ((BIG, 12e9), (SMALL, 1e9)):
        LibraryModel.objects.create(
            name=name,
            path=f"/models/{name}",
            family="sdxl",
            layout="folder",
            size_bytes=1,
            sha256="0" * 64,
            modified=0.0,
            details={"parts": {"denoiser": parameters * 2}},
        )


def job(owner, *, model=SMALL, steps=20, status="queued", age=0.0, finished_ago=None):
    """A diffusers job of ``owner`` on a 1000 x 1000 picture (1 megapixel), made ``age``
    seconds ago; a finished one (``finished_ago``) ran just before it finished."""
    source = SourceImage.objects.create(owner=owner, width=1000, height=1000, sha256="0" * 64)
    row = Generation.objects.create(
        owner=owner,
        source=source,
        engine="diffusers",
        model_name=model,
        library_model=LibraryModel.objects.filter(name=model).first(),
        params={"num_inference_steps": steps},
        status=status,
    )
    now = timezone.now()
    times = {"created_at": now - timedelta(seconds=age)}
    if finished_ago is not None:
        times |= {
            "started_at": now - timedelta(seconds=finished_ago + 1),
            "finished_at": now - timedelta(seconds=finished_ago),
        }
    Generation.objects.filter(pk=row.pk).update(**times)
    row.refresh_from_db()
    return row


def order_of(jobs: list[Generation]) -> list[str]:
    names = {row.pk: name for name, row in jobs}
    queued = [row for _, row in jobs]
    return [names[row.pk] for row in scheduler.queue_order(queued)]


def test_a_jobs_cost_is_steps_times_megapixels_times_billions(models, django_user_model):
    user = django_user_model.objects.create_user(username="ann")
    big, small = job(user, model=BIG, steps=50), job(user, model=SMALL, steps=20)
    costs = scheduler.generation_costs([big, small])
    assert costs[big.pk] == pytest.approx(50 * 1.0 * 12)
    assert costs[small.pk] == pytest.approx(20 * 1.0 * 1)


def test_the_user_whose_recent_jobs_cost_less_goes_first_even_when_newer(models, django_user_model):
    heavy = django_user_model.objects.create_user(username="heavy")
    light = django_user_model.objects.create_user(username="light")
    # heavy ran ONE expensive job (600), light THREE cheap ones (3 x 10 = 30): by count heavy
    # would go first; by cost light does.
    job(heavy, model=BIG, steps=50, status="succeeded", age=200, finished_ago=100)
    for _ in range(3):
        job(light, steps=10, status="succeeded", age=200, finished_ago=100)
    queued = [
        ("heavy 1", job(heavy, age=60)),  # the oldest heads...
        ("heavy 2", job(heavy, age=50)),
        ("light 1", job(light, age=10)),  # ...and the newest
        ("light 2", job(light, age=5)),
        ("light 3", job(light, age=1)),
    ]
    # light's use: 30, then 50, 70, 90 as the order gives them jobs of 20: all under 600.
    assert order_of(queued) == ["light 1", "light 2", "light 3", "heavy 1", "heavy 2"]


def test_an_expensive_queued_job_counts_for_more_turns_of_the_others(models, django_user_model):
    ann = django_user_model.objects.create_user(username="ann")
    bob = django_user_model.objects.create_user(username="bob")
    queued = [
        ("ann 1", job(ann, model=BIG, steps=50, age=60)),  # 600
        ("ann 2", job(ann, model=BIG, steps=50, age=50)),
        ("bob 1", job(bob, age=40)),  # 20 each
        ("bob 2", job(bob, age=30)),
        ("bob 3", job(bob, age=20)),
    ]
    # No use yet: ann's oldest first; her 600 then lets all of bob's cheap jobs go (20, 40,
    # 60 < 600) before her second. Taking turns by count would give ann 1, bob 1, ann 2, ...
    assert order_of(queued) == ["ann 1", "bob 1", "bob 2", "bob 3", "ann 2"]


def test_only_jobs_within_the_fair_share_window_count(models, django_user_model, settings):
    heavy = django_user_model.objects.create_user(username="heavy")
    light = django_user_model.objects.create_user(username="light")
    job(heavy, model=BIG, steps=50, status="succeeded", age=400, finished_ago=300)
    queued = [("heavy", job(heavy, age=60)), ("light", job(light, age=10))]
    settings.FAIR_SHARE_WINDOW_SECONDS = 600  # heavy's job, 300 s ago, counts: 600 > 0
    assert order_of(queued) == ["light", "heavy"]
    settings.FAIR_SHARE_WINDOW_SECONDS = 200  # it no longer does: the older head first
    assert order_of(queued) == ["heavy", "light"]


def test_a_running_job_counts_however_long_ago_it_started(models, django_user_model, settings):
    settings.FAIR_SHARE_WINDOW_SECONDS = 60
    heavy = django_user_model.objects.create_user(username="heavy")
    light = django_user_model.objects.create_user(username="light")
    running = job(heavy, model=BIG, steps=50, status="running", age=4000)
    Generation.objects.filter(pk=running.pk).update(
        started_at=timezone.now() - timedelta(seconds=3600)
    )
    queued = [("heavy", job(heavy, age=60)), ("light", job(light, age=10))]
    assert order_of(queued) == ["light", "heavy"]


def test_one_users_queue_is_read_without_their_use_and_in_as_many_queries_however_busy(
    models, django_user_model, django_assert_num_queries
):
    """The order is read on the way to every job's start (its "queued" event, the claim):
    one user's line goes by priority and age alone, so their use is not read at all, and a
    reading costs the same number of queries after 30 finished jobs as after none."""
    ann = django_user_model.objects.create_user(username="ann")
    bob = django_user_model.objects.create_user(username="bob")
    first, second = job(ann, age=20), job(ann, age=10)
    # In its model's queue (the job's plan names it: no query): the queued jobs, the models'
    # sizes.
    with django_assert_num_queries(2):
        assert scheduler.generation_queue(generation=first) == [first, second]
    for _ in range(30):
        job(ann, status="succeeded", age=100, finished_ago=50)
    with django_assert_num_queries(2):
        assert scheduler.generation_queue(generation=first) == [first, second]
    # A second user in the line: their use decides, read in one query (and the sizes of the
    # models their jobs ran), whatever its number of rows. Bob's head goes first (no use).
    other = job(bob, age=5)
    with django_assert_num_queries(4):
        assert scheduler.generation_queue(generation=first) == [other, first, second]


def query_plans(read) -> str:
    """The plans of the queries ``read()`` makes, the planner told to use an index wherever
    one can serve (PostgreSQL; SQLite uses one when it can)."""
    with CaptureQueriesContext(connection) as captured:
        read()
    plans = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        for query in captured.captured_queries:
            cursor.execute(explain + query["sql"])
            plans.append(" ".join(str(row) for row in cursor.fetchall()))
    return "\n".join(plans)


def test_an_engines_pace_is_read_from_an_index_not_every_job_that_ever_ran(
    models, django_user_model
):
    """Every job's start sends its ETA, from its engine's pace: its last succeeded jobs. On a
    database of a million finished jobs a scan of them all would cost more than the job. (The
    queue's own reading has the index on ``status``.)"""
    ann = django_user_model.objects.create_user(username="ann")
    job(ann, status="succeeded", age=100, finished_ago=50)
    plans = query_plans(lambda: status_event(job(ann, age=10)))
    assert "generation_engine_pace" in plans


def test_a_new_job_gets_its_place_then_its_task_then_those_behind_it_theirs_from_one_reading(
    models, django_user_model, monkeypatch, django_assert_num_queries
):
    """A new job's "queued" (with its place) goes out before its task, and the places of the
    jobs it went ahead of after it: they are not on the way to its start. Both come from one
    reading of the queue's order."""
    ann = django_user_model.objects.create_user(username="ann")
    bob = django_user_model.objects.create_user(username="bob")
    job(ann, status="succeeded", age=100, finished_ago=50)  # ann ran a job lately
    behind = job(ann, age=30)
    new = job(bob, age=1)  # bob ran nothing: his job goes ahead of ann's
    steps = []
    monkeypatch.setattr(
        progress,
        "_send",
        lambda sends, about: steps.extend(
            ("place", message["generation_id"], message["event"]["queue_position"])
            for _, message in sends
        ),
    )
    monkeypatch.setattr(queue, "send_turn", lambda job, priority=None: steps.append(("task",)))
    # The enqueued time; the order (the queued jobs, the models' sizes, the users' use and the
    # sizes of what they ran); the places (the queue's running jobs, the pace: the recent
    # jobs of the engine and model, and their models' sizes); the jobs still waiting. (Its
    # model's name, for its queue's, goes with the task.)
    with django_assert_num_queries(9):
        queue.enqueue(new)
    assert steps == [("place", str(new.pk), 1), ("task",), ("place", str(behind.pk), 2)]


def fill_job(owner, size, *, status="queued", age=0.0, took=None):
    """A classical job of ``owner`` on a picture of ``size``, made ``age`` seconds ago; a
    finished one (``took``) ran that many seconds, claimed to stored, ending ``age`` ago."""
    source = SourceImage.objects.create(owner=owner, width=size[0], height=size[1], sha256="0")
    row = Generation.objects.create(owner=owner, source=source, engine="classical", status=status)
    now = timezone.now()
    times = {"created_at": now - timedelta(seconds=age + (took or 0))}  # claimed at once
    if took is not None:
        times |= {
            "started_at": now - timedelta(seconds=age + took),
            "finished_at": now - timedelta(seconds=age) if status == "succeeded" else None,
        }
    Generation.objects.filter(pk=row.pk).update(**times)
    row.refresh_from_db()
    return row


SMALL_PHOTO, LARGE_PHOTO = (600, 450), (4000, 3000)


def test_the_eta_is_whole_job_times_at_each_size_in_the_workers_order(django_user_model):
    """Issue 79: the wait was told 7-19 times too short: only inference seconds counted, a
    4000x3000 photo at 44 times a 600 px one's cost, and not the job running now. Learnt from
    whole jobs (claimed to stored: a small one 1 s, a large one 4 s), each queued job's ETA is
    the running job's time left and the whole times of the jobs ahead of it and its own, in
    the order the worker takes them."""
    past, ann, bob = (django_user_model.objects.create_user(username=n) for n in "pab")
    for age in range(3):
        fill_job(past, SMALL_PHOTO, status="succeeded", age=100 + age, took=1.0)
        fill_job(past, LARGE_PHOTO, status="succeeded", age=200 + age, took=4.0)
    first, large, second = (
        fill_job(ann, SMALL_PHOTO, age=30),
        fill_job(ann, LARGE_PHOTO, age=20),
        fill_job(bob, SMALL_PHOTO, age=10),
    )
    places = scheduler.generation_queue_places(generation=first, limit=10)
    assert [(job.pk, at) for job, at, _ in places] == [(first.pk, 1), (second.pk, 2), (large.pk, 3)]
    assert [eta for _, _, eta in places] == pytest.approx([1.0, 2.0, 6.0], abs=0.05)
    # A large job claimed a second ago: about 3 s of it left, before every queued job.
    running = fill_job(past, LARGE_PHOTO, status="running", took=1.0)
    assert scheduler.generation_queue_place(generation=running) == (
        None,
        pytest.approx(3.0, abs=0.1),
    )
    places = scheduler.generation_queue_places(generation=first, limit=10)
    assert [eta for _, _, eta in places] == pytest.approx([4.0, 5.0, 9.0], abs=0.1)
    # The first queued job claimed by the worker (the large one done) between the reading of
    # the order and that of the running jobs: counted once, not also as running (which told a
    # job behind it 9.2 s for a 5.2 s wait, tests/test_eta.py in a CI run).
    running.delete()
    order, costs = scheduler._queue_of(first)
    Generation.objects.filter(pk=first.pk).update(status="running", started_at=timezone.now())
    places = scheduler._places(order, costs, scheduler._queue_key(first))
    assert [eta for _, _, eta in places] == pytest.approx([1.0, 2.0, 6.0], abs=0.1)
