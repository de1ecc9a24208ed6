"""Upscale jobs (issue 41): ``POST /api/upscale`` queues a job in the history, run by the worker
with a resampler or with a super-resolution model of the library (here a tiny Real-ESRGAN,
scanned from UPSCALERS_DIR): the exact size asked for, progress per tile, a cancel between
tiles, the output of an earlier job as the input, and the limits checked before any pixel
is decoded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from inpainting import engine
from inpainting.engine import upscale as engine_upscale
from inpainting.models import Generation, LibraryModel
from inpainting.services import generations as generations_service
from inpainting.services import upscale as upscale_service
from inpainting.services.library import library_scan
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests.conftest import client_for
from tests.helpers import output_pixels, wait_for_status
from tests.images import gradient, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

TINY = "tiny-RealESRGAN_x4plus.safetensors"


@pytest.fixture
def upscalers(models_dir):
    """UPSCALERS_DIR with the tiny Real-ESRGAN, a weights-only .pth of it, and a pickle."""
    root = Path(settings.UPSCALERS_DIR)
    write_tiny_real_esrgan(root / TINY)
    write_tiny_real_esrgan(root / "tiny-weights-only.pth")
    torch.save({"model": torch.nn.Conv2d(3, 3, 1)}, root / "pickled.pth")
    return root


class Recorder:
    """A job's progress as the worker reports it, and a cancel after ``cancel_after`` steps."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.events, self.cancel_after = [], cancel_after

    def __call__(self, event: engine.ProgressEvent) -> None:
        self.events.append((event.step, event.total))

    def is_cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.events) >= self.cancel_after


def upload(image: Image.Image) -> SimpleUploadedFile:
    return SimpleUploadedFile("photo.png", png_bytes(image), "image/png")


def test_the_scan_records_upscalers_with_architecture_and_scale_and_refuses_a_pickle(
    upscalers, api
):
    report = library_scan()
    assert f"upscalers/{TINY}" in report.added
    assert "upscalers/tiny-weights-only.pth" in report.added
    refused = dict(report.refused)
    assert "needs pickle to load" in refused["upscalers/pickled.pth"]
    row = LibraryModel.objects.upscalers().get(name=TINY)
    assert row.details == {"architecture": "ESRGAN", "scale": 4}
    listed = api.get("/api/upscalers").json()["upscalers"]
    assert [u["name"] for u in listed][:2] == ["lanczos", "nearest"]
    tiny = next(u for u in listed if u["name"] == TINY)
    assert (tiny["kind"], tiny["architecture"], tiny["scale"]) == ("model", "ESRGAN", 4)
    assert "pickled.pth" not in {u["name"] for u in listed}


def test_a_model_upscale_runs_on_the_worker_to_the_exact_size(upscalers, keyed_api, celery_worker):
    library_scan()
    picture = gradient(300, 200)
    response = keyed_api.post(
        "/api/upscale",
        # The library's name without its suffix, as A1111's lists give it, names it too.
        {"image": upload(picture), "upscaler": TINY.removesuffix(".safetensors"), "width": 1000},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    generation = Generation.objects.get(pk=body["id"])
    assert (generation.engine, generation.model_name) == ("upscale", TINY)
    out = output_pixels(generation)
    assert out.shape == (667, 1000, 3)  # 1000 wide, the aspect ratio kept
    # A step per tile: 300x200 in 256 px tiles is two tiles.
    assert (generation.step, generation.total_steps) == (2, 2)
    assert generation.metadata["architecture"] == "ESRGAN"
    with generation.images.get().file.open("rb") as handle:
        written = json.loads(Image.open(handle).text["dreamlayer"])
    assert written["upscale"] == {"width": 1000, "height": 667, "factor": None, "upscaler": TINY}
    assert (written["architecture"], written["scale"], written["engine"]) == (
        "ESRGAN",
        4,
        "upscale",
    )
    assert "seed" not in written and "prompt" not in written
    assert generation.description == f"Upscale to 1000x667 ({TINY})"
    history = keyed_api.get("/api/generations/").json()["results"]
    assert history[0]["id"] == str(generation.pk)


def test_the_worker_path_reports_each_tile_and_stops_between_tiles_once_cancelled(
    upscalers, user, monkeypatch
):
    """``upscale_job_run`` is what the worker runs: here with a recorder for its progress."""
    library_scan()
    monkeypatch.setattr(generations_service, "enqueue", lambda generation: None)
    generation = upscale_service.upscale_job_create(
        generations_service.Sender(user),
        ask=upscale_service.UpscaleAsk(factor=2),
        upscaler=TINY,
        image_file=upload(gradient(600, 300)),
    )

    recorder = Recorder(None)
    result = upscale_service.upscale_job_run(generation, recorder)
    assert result.images[0].size == (1200, 600)
    assert recorder.events == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    stopped = Recorder(2)
    with pytest.raises(engine.Cancelled):
        upscale_service.upscale_job_run(generation, stopped)
    assert stopped.events == [(1, 6), (2, 6)]


def test_an_output_of_a_job_is_upscaled_by_lanczos_into_the_history(api, celery_worker):
    first = api.post(
        "/api/upscale", {"image": upload(gradient(64, 48)), "factor": 2}, format="multipart"
    )
    assert first.status_code == 200, first.content
    again = api.post(
        "/api/upscale", {"generation": first.json()["id"], "factor": 1.5}, format="json"
    )
    assert again.status_code == 200, again.content
    generation = Generation.objects.get(pk=again.json()["id"])
    want = Image.fromarray(output_pixels(Generation.objects.get(pk=first.json()["id"])))
    want = want.resize((192, 144), Image.Resampling.LANCZOS)
    assert np.array_equal(output_pixels(generation), np.asarray(want))
    assert generation.params["upscale"]["of"] == {"generation": first.json()["id"], "index": 0}
    # A width and a height: the picture covers both, and its middle is cut out.
    both = api.post(
        "/api/upscale",
        {"generation": first.json()["id"], "width": 200, "height": 100},
        format="json",
    )
    assert both.status_code == 200, both.content
    cut = Image.fromarray(output_pixels(Generation.objects.get(pk=first.json()["id"])))
    cut = cut.resize((200, 150), Image.Resampling.LANCZOS).crop((0, 25, 200, 125))
    cropped = output_pixels(Generation.objects.get(pk=both.json()["id"]))
    assert np.array_equal(cropped, np.asarray(cut))
    # Re-run: the same picture, size and upscaler again.
    rerun = api.post(f"/api/generations/{generation.pk}/rerun/")
    assert rerun.status_code == 201, rerun.content
    done = wait_for_status(rerun.json()["id"])
    assert done.status == "succeeded"
    assert np.array_equal(output_pixels(done), output_pixels(generation))


def test_the_history_page_upscales_an_output(user, client, celery_worker, api):
    made = api.post(
        "/api/upscale", {"image": upload(gradient(40, 30)), "factor": 1}, format="multipart"
    )
    client.force_login(user)
    page = client.get(f"/history/{made.json()['id']}/")
    assert b'id="upscale-form"' in page.content
    response = client.post(
        f"/history/{made.json()['id']}/upscale/", {"index": 0, "factor": 3, "upscaler": "nearest"}
    )
    assert response.status_code == 302
    new_id = response["Location"].rstrip("/").split("/")[-1]
    generation = wait_for_status(new_id)
    assert generation.status == "succeeded"
    assert output_pixels(generation).shape == (90, 120, 3)
    detail = client.get(f"/history/{new_id}/").content.decode()
    assert "Upscale to 120x90 (x3, nearest)" in detail
    assert "Regenerated area" not in detail and "Seed used" not in detail


def test_bad_requests_are_clear_400s_and_store_nothing(api, other_user):
    picture = upload(gradient(40, 30))
    cases = [
        ({"factor": 2}, "image"),
        ({"image": picture, "upscaler": "RealESRGAN_x4plus.pth"}, "upscaler"),
        ({"image": upload(gradient(40, 30)), "factor": 5}, "factor"),
        ({"image": upload(gradient(40, 30)), "factor": 2, "width": 90}, "factor"),
        ({"image": upload(gradient(40, 30)), "width": 20}, "width"),
    ]
    for data, field in cases:
        response = api.post("/api/upscale", data, format="multipart")
        assert response.status_code == 400, (data, response.content)
        assert field in response.json()["errors"], response.json()
    assert not Generation.objects.exists()


@pytest.mark.usefixtures("jobs_settled")  # its two jobs run on after its last line
def test_another_users_generation_is_not_found(api, other_user, celery_worker):
    theirs = client_for(other_user).post(
        "/api/upscale", {"image": upload(gradient(40, 30)), "wait": "false"}, format="multipart"
    )
    assert theirs.status_code == 202, theirs.content
    response = api.post("/api/upscale", {"generation": theirs.json()["id"]}, format="json")
    assert response.status_code == 404
    mine = api.post(
        "/api/upscale", {"image": upload(gradient(40, 30)), "wait": "false"}, format="multipart"
    )
    missing = api.post("/api/upscale", {"generation": mine.json()["id"], "index": 3}, format="json")
    assert missing.status_code == 400 and "index" in missing.json()["errors"]


def test_an_output_over_the_limit_is_a_400_before_any_pixel_is_decoded(api, monkeypatch, settings):
    settings.UPSCALE_MAX_PIXELS = 1000 * 1000

    def no_decoding(*args, **kwargs):
        raise AssertionError("the picture was decoded")

    monkeypatch.setattr(upscale_service, "decode_image", no_decoding)
    # 4096 x 2048 as its header says (a PNG of one colour: small to send, large to decode).
    big = Image.new("RGB", (4096, 2048), (40, 90, 160))
    response = api.post("/api/upscale", {"image": upload(big), "factor": 2}, format="multipart")
    assert response.status_code == 400, response.content
    assert "8192x4096" in response.json()["errors"]["factor"][0]
    assert "UPSCALE_MAX_PIXELS" in response.json()["errors"]["factor"][0]
    assert not Generation.objects.exists()  # and nothing was decoded (no_decoding above)


def test_staff_upscale_only_their_own_outputs(api, staff_api, celery_worker):
    """Staff see everyone's jobs, but an upscale makes a job of theirs: only of their own."""
    theirs = api.post("/api/upscale", {"image": upload(gradient(40, 30))}, format="multipart")
    assert theirs.status_code == 200, theirs.content
    response = staff_api.post("/api/upscale", {"generation": theirs.json()["id"]}, format="json")
    assert response.status_code == 404


def test_sizes_no_number_can_hold_are_a_400_not_a_crash(api):
    for body in ({"width": 10**400}, {"width": 70000, "height": 10}, {"factor": float("nan")}):
        response = api.post(
            "/api/upscale",
            json.dumps({"generation": "00000000-0000-0000-0000-000000000000", **body}),
            content_type="application/json",
        )
        assert response.status_code == 400, (body, response.content)
    assert not Generation.objects.exists()


def test_an_idempotency_key_replays_the_same_upscale(api, celery_worker):
    picture = png_bytes(gradient(40, 30))

    def send(factor):
        return api.post(
            "/api/upscale",
            {"image": SimpleUploadedFile("a.png", picture, "image/png"), "factor": factor},
            format="multipart",
            headers={"Idempotency-Key": "upscale-1"},
        )

    first, again = send(2), send(2)
    assert first.status_code == again.status_code == 200, (first.content, again.content)
    assert first.json()["id"] == again.json()["id"]
    assert Generation.objects.count() == 1
    other = send(3)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["errors"]


def test_a_rerun_checks_that_its_upscaler_is_still_there(upscalers, api, celery_worker):
    library_scan()
    made = api.post(
        "/api/upscale",
        {"image": upload(gradient(40, 30)), "upscaler": TINY, "factor": 1},
        format="multipart",
    )
    assert made.status_code == 200, made.content
    LibraryModel.objects.filter(name=TINY).update(enabled=False)
    rerun = api.post(f"/api/generations/{made.json()['id']}/rerun/")
    assert rerun.status_code == 400
    assert "No upscaler called" in rerun.json()["errors"]["upscaler"][0]


def test_a_models_own_output_is_kept_within_the_limit(upscalers, user, monkeypatch, settings):
    """A x4 model on a picture whose x4 would exceed UPSCALE_MAX_PIXELS: the picture goes in
    smaller, so the model's output (before the size asked for) stays within the limit."""
    library_scan()
    monkeypatch.setattr(generations_service, "enqueue", lambda generation: None)
    settings.UPSCALE_MAX_PIXELS = 400 * 300
    generation = upscale_service.upscale_job_create(
        generations_service.Sender(user),
        ask=upscale_service.UpscaleAsk(factor=1.5),
        upscaler=TINY,
        image_file=upload(gradient(200, 150)),  # x4 would be 800 x 600
    )
    seen = []
    real = engine_upscale.run_tiled

    def spy(model, image, scale, **kwargs):
        seen.append(image.size)
        return real(model, image, scale, **kwargs)

    monkeypatch.setattr(engine_upscale, "run_tiled", spy)
    result = upscale_service.upscale_job_run(generation, Recorder())
    assert seen == [(100, 75)] and result.images[0].size == (300, 225)
