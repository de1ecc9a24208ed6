"""A job's plan (issue 78): what a job runs is resolved once, when it is queued, and stored by
library id (the model on the row, its additions in its plan); the worker's run looks nothing
up by name, so a model, a LoRA and a ControlNet renamed after the job was queued (their files
moved, the library scanned: each row follows its file) still run, and make the same picture."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from huggingface_hub import constants as hf_constants
from PIL import Image

from inpainting import fleet
from inpainting.models import Generation, LibraryModel
from inpainting.services import library as library_service
from inpainting.services import queue, runs
from inpainting.services.library import library_scan
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from inpainting.testing.tiny_lora import write_tiny_lora
from tests.helpers import black_box_mask_png, image_png, output_pixels, post_img2img

# Not a transaction test: the rows stay in the test's transaction, unseen by any live worker
# of the session (the job runs here, as a worker runs it).
pytestmark = pytest.mark.django_db

#: A library row looked up by its id, or by its name (any comparison of the column).
BY_ID = re.compile(r'"inpainting_librarymodel"\."id" (=|IN) ')
BY_NAME = re.compile(r'"inpainting_librarymodel"\."name" (=|IN|LIKE|GLOB) ', re.IGNORECASE)
REPORT = "plan@tests:1"
JOB = {
    "prompt": "a red rose",
    "engine": "diffusers",
    "model": "alpha",
    "seed": 5,
    "wait": "false",
    "loras": json.dumps([{"name": "ink", "weight": 1}]),
    "controlnet": json.dumps({"name": "inpaint-cn", "conditioning_scale": 1.0}),
}


@pytest.fixture(scope="module")
def additions(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    return {
        "ink.safetensors": write_tiny_lora(tiny_model, root / "ink.safetensors", layout="peft"),
        "inpaint-cn": write_tiny_controlnet(tiny_model, root / "inpaint-cn"),
    }


@pytest.fixture
def library(tmp_path, models_dir, tiny_model, additions, monkeypatch):
    """alpha (the tiny SD 1.5 model), the LoRA ink and the ControlNet inpaint-cn, scanned;
    a worker reported serving alpha (the web side queues a model's job only then)."""
    shutil.copytree(tiny_model, models_dir / "alpha")
    settings.LORAS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(additions["ink.safetensors"], settings.LORAS_DIR / "ink.safetensors")
    shutil.copytree(additions["inpaint-cn"], settings.CONTROLNETS_DIR / "inpaint-cn")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    report_serving_alpha()
    yield models_dir
    fleet.report_remove(REPORT)
    (settings.LORAS_DIR / "ink-v2.safetensors").unlink(missing_ok=True)
    shutil.rmtree(settings.CONTROLNETS_DIR / "cn-v2", ignore_errors=True)
    shutil.rmtree(settings.CONTROLNETS_DIR / "inpaint-cn", ignore_errors=True)


def report_serving_alpha() -> None:
    fleet.report_write(REPORT, {"worker": "plan@tests", "pid": 1, "models": ["alpha"]})


def queued(api) -> Generation:
    # Reported again: a report older than WORKER_REPORT_TIMEOUT_SECONDS (5 s in the tests) is
    # a gone worker's, and the in-process job before this one took longer on a loaded machine.
    report_serving_alpha()
    response = post_img2img(api, image_png(), black_box_mask_png(), **JOB)
    assert response.status_code == 202, response.content
    return Generation.objects.get(pk=response.json()["id"])


def test_a_renamed_model_lora_and_controlnet_still_run_found_by_id_never_by_name(
    api, library, monkeypatch, tmp_path
):
    alpha = LibraryModel.objects.get(kind="checkpoint", name="alpha")
    lora = LibraryModel.objects.get(kind="lora", name="ink.safetensors")
    controlnet = LibraryModel.objects.get(kind="controlnet", name="inpaint-cn")
    before = queued(api)
    runs.generation_run(generation_id=str(before.pk))
    before.refresh_from_db()
    assert before.status == "succeeded", before.error
    # The command line resolves the same plan and paints the same picture.
    (tmp_path / "in.png").write_bytes(image_png())
    (tmp_path / "mask.png").write_bytes(black_box_mask_png())
    flags = {k: v for k, v in JOB.items() if k in ("prompt", "engine", "model", "seed")}
    call_command(
        "inpaint",
        *(f"--{name}={value}" for name, value in flags.items()),
        f"--image={tmp_path / 'in.png'}",
        f"--mask={tmp_path / 'mask.png'}",
        f"--out={tmp_path / 'out.png'}",
        "--lora=ink:1",
        f"--controlnet={JOB['controlnet']}",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    made = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert np.array_equal(made, output_pixels(before))

    job = queued(api)
    assert job.library_model_id == alpha.pk
    assert job.plan == {
        "loras": [{"id": lora.pk, "name": "ink.safetensors", "weight": 1.0}],
        "controlnet": {
            "id": controlnet.pk,
            "name": "inpaint-cn",
            "conditioning_scale": 1.0,
            "guidance_start": 0.0,
            "guidance_end": 1.0,
        },
    }
    # Renamed while the job waits: each file moved, the library scanned again. Each row
    # follows its file (same id), and the job gets a turn of its model's queue by its new name.
    (library / "alpha").rename(library / "beta")
    (settings.LORAS_DIR / "ink.safetensors").rename(settings.LORAS_DIR / "ink-v2.safetensors")
    (settings.CONTROLNETS_DIR / "inpaint-cn").rename(settings.CONTROLNETS_DIR / "cn-v2")
    turns = []
    monkeypatch.setattr(library_service, "send_turn", turns.append)
    report = library_scan()
    assert sorted(report.renamed) == [
        "alpha -> beta",
        "controlnets/inpaint-cn -> controlnets/cn-v2",
        "loras/ink.safetensors -> loras/ink-v2.safetensors",
    ]
    assert [turn.pk for turn in turns] == [job.pk]
    assert LibraryModel.objects.get(pk=alpha.pk).name == "beta"
    assert queue.generation_queue(job) == fleet.model_queue("beta")
    # A job that names the old name now is refused: the name is gone.
    refused = post_img2img(api, image_png(), black_box_mask_png(), **JOB)
    assert refused.status_code == 400
    assert "No model named 'alpha' is installed here" in refused.json()["message"]

    with CaptureQueriesContext(connection) as run:
        runs.generation_run(generation_id=str(job.pk), queue=fleet.model_queue("beta"))
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert np.array_equal(output_pixels(job), output_pixels(before))
    reads = [q["sql"] for q in run.captured_queries if "inpainting_librarymodel" in q["sql"]]
    by_id = [sql for sql in reads if BY_ID.search(sql)]
    assert len(by_id) >= 3, reads  # the model, the LoRA and the ControlNet, by their ids
    by_name = [sql for sql in reads if BY_NAME.search(sql)]
    assert by_name == [], by_name
