"""Workers routed by model (issue 16): two real Celery workers, each with its own models
folder, each serving one library model; a job runs on the worker that serves its model, and
a model that no live worker serves is refused at submission with a 503."""

from __future__ import annotations

import io
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.engine.backends.loading import load_pipeline, pipeline_bytes
from inpainting.fleet import fleet_summary, model_queue, workers_serving
from inpainting.models import Generation
from inpainting.services.library import library_scan
from inpainting.testing.tiny_model import write_tiny_inpaint_model
from tests.conftest import child_env, start_worker, start_workers, stop_worker, stop_workers
from tests.helpers import (
    black_box_mask_png,
    compat_submissions,
    image_png,
    post_img2img,
    wait_for_status,
    wait_until_served,
)

pytestmark = pytest.mark.django_db(transaction=True)
NORTH, SOUTH = "north-worker@dreamlayer", "south-worker@dreamlayer"
NORTH_QUEUE = model_queue("north")


@pytest.fixture(scope="module")
def fleet_disks(tmp_path_factory, tiny_model):
    """The disks: the web side's library has north, south and east. The north worker's disk
    has north (it serves what it has); the south worker's has north and south, but
    WORKER_MODELS says it serves south only. Nobody has east."""
    root = tmp_path_factory.mktemp("fleet")
    south_weights = write_tiny_inpaint_model(root / "south-weights", seed=2)
    disks = {"web": ["north", "south", "east"], "north": ["north"], "south": ["north", "south"]}
    weights = {"north": tiny_model, "south": south_weights, "east": tiny_model}
    for disk, names in disks.items():
        for name in names:
            shutil.copytree(weights[name], root / disk / name)
    return root


@pytest.fixture(scope="module")
def fleet_workers(fleet_disks, django_db_setup, django_db_blocker):
    """The two workers, started once for the module (the test that kills one runs last)."""
    with django_db_blocker.unblock():
        specs = [
            (
                node,
                fleet_disks / f"{name}.log",
                child_env(MODELS_DIR=str(fleet_disks / name), WORKER_MODELS=wanted),
                "inference",
                "prefork",
            )
            for name, node, wanted in (("north", NORTH, ""), ("south", SOUTH, "south"))
        ]
    started = start_workers(specs)
    workers = {"north": started[NORTH], "south": started[SOUTH]}
    yield workers
    stop_workers(list(workers.values()))


@pytest.fixture
def fleet(fleet_workers, fleet_disks, settings, models_dir, monkeypatch):
    """The fleet with the web side's library scanned for this test (each test starts with an
    empty database; the workers read what they serve from it at their next report). The
    session's own worker (if running) has none of the models in its MODELS_DIR."""
    settings.MODELS_DIR = fleet_disks / "web"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(fleet_disks / "hf-cache"))
    library_scan()
    return fleet_workers


def output(generation: Generation) -> np.ndarray:
    with generation.images.get(index=0).file.open("rb") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


def submit(api, model: str):
    fields = {"prompt": "a red rose", "seed": 5, "wait": "false", "model": model}
    return post_img2img(api, image_png(), black_box_mask_png(), **fields)


def test_each_job_runs_on_the_worker_that_serves_its_model(api, fleet, staff_user, tiny_model):
    wait_until_served("north", "south")
    assert workers_serving("north") == [NORTH]
    assert workers_serving("south") == [SOUTH]  # it has north on disk, but does not serve it
    # /api/health lists what each live worker serves, without the machines' names.
    health = api.get("/api/health").json()["workers"]
    assert ["north"] in [w["models"] for w in health] and ["south"] in [w["models"] for w in health]
    assert all("worker" not in w and "pid" not in w for w in health)

    responses = [submit(api, model) for model in ("north", "south", "north", "south")]
    assert [r.status_code for r in responses] == [202] * 4, [r.content for r in responses]
    ids = [r.json()["id"] for r in responses]
    done = [wait_for_status(i, timeout=120) for i in ids]
    assert [g.status for g in done] == ["succeeded"] * 4, [g.error for g in done]
    assert [g.worker for g in done] == [NORTH, SOUTH, NORTH, SOUTH]
    assert [g.model_name for g in done] == ["north", "south", "north", "south"]

    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = Image.open(io.BytesIO(black_box_mask_png()))
    inside = effective_mask(mask, original.shape[1::-1], MaskOptions()) > 0
    for generation in done:
        picture = output(generation)
        assert np.array_equal(picture[~inside], original[~inside])  # exact preservation
        assert np.abs(picture[inside].astype(int) - original[inside]).mean() > 5  # painted
    north, south = output(done[0]), output(done[1])
    assert not np.array_equal(north[inside], south[inside])  # other weights, other pixels
    assert np.array_equal(north, output(done[2])) and np.array_equal(south, output(done[3]))
    # The loaded pipelines are reported too.
    reports = {tuple(w["models"]): w for w in api.get("/api/health").json()["workers"]}
    assert reports[("north",)]["loaded"] == ["north"]
    assert reports[("south",)]["loaded"] == ["south"]
    # ... with the memory their weights hold (fp32 on these CPU workers).
    held = pipeline_bytes(load_pipeline(str(tiny_model), "cpu", cache_size=2))
    assert reports[("north",)]["memory"] == {"north": held}
    # Staff filter the history by worker and by model in the admin.
    admin = Client()
    admin.force_login(staff_user)
    for query, shown in ((f"worker={SOUTH}", SOUTH), ("model_name=north", NORTH)):
        page = admin.get(f"/admin/inpainting/generation/?{query}").content.decode()
        for generation in done:
            link = f"/admin/inpainting/generation/{generation.pk}/change/"
            assert (link in page) == (generation.worker == shown), (query, generation.worker)


def test_a_worker_whose_model_left_its_disk_stops_taking_its_jobs(api, fleet, fleet_disks):
    """The north worker's copy of north is removed: it stops consuming north's queue (its
    next report), so north is a 503 at submission instead of jobs failing on a worker that
    cannot run them; copied back, it serves north again."""
    wait_until_served("north", "south")
    copy = fleet_disks / "north" / "north"
    shutil.move(copy, fleet_disks / "north-aside")
    deadline = time.monotonic() + 10
    while workers_serving("north") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_serving("north") == []
    assert NORTH_QUEUE not in fleet["north"].queues(NORTH)
    assert submit(api, "north").status_code == 503
    shutil.move(fleet_disks / "north-aside", copy)
    wait_until_served("north")
    assert NORTH_QUEUE in fleet["north"].queues(NORTH)
    generation = wait_for_status(submit(api, "north").json()["id"], timeout=120)
    assert (generation.status, generation.worker) == ("succeeded", NORTH)


def test_engine_info_lists_the_workers_and_their_models(fleet):
    wait_until_served("north", "south")
    out = io.StringIO()
    call_command("engine_info", stdout=out)
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("workers "))
    lines = {part.split(" (pid ")[0]: part for part in row.split(None, 1)[1].split("; ")}
    assert "serves north," in lines[NORTH] and "serves south," in lines[SOUTH]


def test_worker_models_names_the_models_and_none_serves_none(tmp_path, models_dir):
    """WORKER_MODELS=none: a worker for the classical and lama engines only."""
    write_tiny_inpaint_model(Path(models_dir) / "alpha")
    library_scan()
    env = child_env(WORKER_MODELS="none")
    worker = start_worker("none-worker@dreamlayer", tmp_path / "none.log", env, "inference")
    try:
        deadline = time.monotonic() + 30
        report = None
        while report is None and time.monotonic() < deadline:
            time.sleep(0.2)
            live = {w["worker"]: w for w in fleet_summary()}
            report = live.get("none-worker@dreamlayer")
        assert report is not None, worker.log_tail()
        assert report["models"] == [] and report["loaded"] == []
        assert "none-worker@dreamlayer" not in workers_serving("alpha")
    finally:
        stop_worker(worker)


def test_metrics_see_the_jobs_and_the_workers_of_the_whole_cluster(
    api, fleet, user, staff_user, settings
):
    """One scrape of the web side counts the jobs both workers ran, the models they loaded,
    the workers alive and the HTTP requests; without the token or a staff login it is
    refused."""
    from prometheus_client.parser import text_string_to_metric_families

    settings.METRICS_TOKEN = "scrape-secret-123"
    wait_until_served("north", "south")
    for model in ("north", "south", "north"):
        assert submit(api, model).status_code == 202
    for generation in Generation.objects.all():
        assert wait_for_status(generation.pk, timeout=120).status == "succeeded"

    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    visitor = Client()
    visitor.force_login(user)
    assert visitor.get("/metrics").status_code == 403
    staff = Client()
    staff.force_login(staff_user)
    assert staff.get("/metrics").status_code == 200
    response = Client().get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")

    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name: str, **labels) -> float:
        return samples[(name, tuple(sorted(labels.items())))]  # a missing sample fails

    assert value("dreamlayer_generations", status="succeeded", engine="diffusers") == 3
    assert value("dreamlayer_job_duration_seconds_count") == 3
    assert value("dreamlayer_queue_wait_seconds_count") == 3
    assert value("dreamlayer_job_duration_seconds_bucket", le="+Inf") == 3
    assert value("dreamlayer_model_loads_total", model="north") >= 1
    assert value("dreamlayer_model_loads_total", model="south") >= 1
    assert value("dreamlayer_model_load_seconds_total", model="north") > 0
    assert value("dreamlayer_workers_alive") >= 2
    assert value("dreamlayer_model_workers", model="north") == 1
    assert value("dreamlayer_model_workers", model="south") == 1
    assert value("dreamlayer_model_loaded", model="south") == 1
    assert value("dreamlayer_queue_depth", queue="inference.model.north") == 0
    accepted = value(
        "dreamlayer_http_requests_total", method="POST", view="api:img2img", status="202"
    )
    assert accepted >= 3
    assert value("dreamlayer_http_request_duration_seconds_count") >= accepted


def test_a_model_no_live_worker_serves_is_a_503_at_submission(api, api_key, fleet):
    wait_until_served("north", "south")
    response = submit(api, "east")
    assert response.status_code == 503, response.content
    assert "No worker serving the model 'east' is running now" in response.json()["message"]
    modelslab, fooocus = compat_submissions(api_key)
    for refused in (modelslab("east"), fooocus("east")):
        assert refused.status_code == 503, refused.content
        assert "No worker serving the model 'east'" in str(refused.json())
    assert not Generation.objects.exists()

    # The south worker dies (this test runs last: the fleet is the module's); once its
    # report is stale, south is refused too.
    os.kill(fleet["south"].process.pid, signal.SIGKILL)
    deadline = time.monotonic() + settings.WORKER_REPORT_TIMEOUT_SECONDS + 10
    while workers_serving("south") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert submit(api, "south").status_code == 503
    assert submit(api, "north").status_code == 202
