"""The lama engine through the API, the real worker, the health check and engine_info, with a
tiny LaMa-shaped ONNX file in place of big-lama (the worker always has it, see conftest; the
web side offers lama where a test points LAMA_MODEL at it)."""

import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient

from inpainting.engine import MaskOptions, effective_mask
from inpainting.models import Generation
from tests.helpers import H, W, black_box_mask_png, image_png, post_img2img


def through_the_worker(test):
    """The whole path: the web side queues, the real Celery worker runs, img2img waits."""
    test = pytest.mark.usefixtures("celery_worker")(test)
    return pytest.mark.django_db(transaction=True)(test)


@pytest.fixture
def lama_present(settings, tiny_lama):
    settings.LAMA_MODEL = str(tiny_lama.fixed)  # absolute: MODELS_DIR does not apply
    return settings


@pytest.fixture
def lama_absent(settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    settings.LAMA_MODEL = "big-lama.onnx"
    return settings


def downloaded(api, url: str) -> np.ndarray:
    response = api.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB"))


def box_mask() -> np.ndarray:
    return effective_mask(Image.open(io.BytesIO(black_box_mask_png())), (W, H), MaskOptions())


@through_the_worker
def test_health_and_engine_info_show_lama_loaded_by_the_worker(api, lama_present, capsys):
    """The worker opens the file when it starts and reports it; the web side shows it."""
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="lama")
    assert response.status_code == 200, response.content
    lama = APIClient().get("/api/health").json()["lama"]
    assert lama == {"present": True, "model": "tiny-lama-64.onnx", "loaded": True, "error": None}
    call_command("engine_info", "--json")
    report = json.loads(capsys.readouterr().out)["lama_worker_report"]
    assert report["loaded"] is True and report["device"] == "cpu"


@through_the_worker
def test_engine_lama_through_img2img(api, lama_present):
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="lama", seed=4)
    assert response.status_code == 200, response.content
    body = response.json()
    meta = body["metadata"]
    assert meta["engine"] == "lama" and meta["model"] == "tiny-lama-64.onnx"
    assert meta["prompt_ignored"] is True and meta["seed"] == 4
    out = downloaded(api, body["images"][0])
    original = np.asarray(Image.open(io.BytesIO(image_png())).convert("RGB"))
    mask = box_mask()
    assert out.shape == original.shape
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.9
    generation = Generation.objects.get(pk=body["id"])
    assert generation.status == "succeeded" and generation.engine == "lama"
    assert generation.model_name == "tiny-lama-64.onnx"


@through_the_worker
def test_auto_runs_a_prompt_less_removal_on_lama_when_its_file_is_present(api, lama_present):
    lama_present.INPAINT_ENGINE = "auto"
    lama_present.LOAD_SD_INPAINT = False
    removal = post_img2img(api, image_png(), black_box_mask_png())
    assert removal.status_code == 200, removal.content
    assert removal.json()["metadata"]["engine"] == "lama"
    prompted = post_img2img(api, image_png(), black_box_mask_png(), prompt="a stone wall")
    assert prompted.status_code == 200, prompted.content
    assert prompted.json()["metadata"]["engine"] == "classical"  # the rules before LaMa


@through_the_worker
def test_auto_runs_a_prompt_less_removal_on_classical_without_the_file(api, lama_absent):
    lama_absent.INPAINT_ENGINE = "auto"
    lama_absent.LOAD_SD_INPAINT = False
    response = post_img2img(api, image_png(), black_box_mask_png())
    assert response.status_code == 200, response.content
    assert response.json()["metadata"]["engine"] == "classical"


@pytest.mark.django_db
def test_engine_lama_without_its_file_is_a_400_naming_the_engine(api, lama_absent):
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="lama")
    assert response.status_code == 400, response.content
    body = response.json()
    assert "'lama' engine is not installed" in body["message"]
    assert "LAMA_MODEL" in body["message"] and "engine" in body["errors"]
    assert Generation.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_engine_is_a_400_listing_the_engines(api, lama_present):
    response = post_img2img(api, image_png(), black_box_mask_png(), engine="llama")
    assert response.status_code == 400, response.content
    assert "lama" in " ".join(response.json()["errors"]["engine"])
    assert Generation.objects.count() == 0


@pytest.mark.django_db
def test_a_full_mask_on_lama_is_a_400(api, lama_present):
    full = Image.new("L", (W, H), 0)  # black inpaints: every pixel
    buffer = io.BytesIO()
    full.save(buffer, format="PNG")
    response = post_img2img(api, image_png(), buffer.getvalue(), engine="lama")
    assert response.status_code == 400, response.content
    assert "lama engine fills a hole" in response.json()["message"]


def test_health_shows_lama_present(lama_present):
    body = APIClient().get("/api/health").json()
    assert "lama" in body["engines"]
    assert body["lama"]["present"] is True and body["lama"]["model"] == "tiny-lama-64.onnx"


def test_health_shows_lama_absent(lama_absent):
    body = APIClient().get("/api/health").json()
    assert "lama" not in body["engines"]
    assert body["lama"] == {
        "present": False,
        "model": "big-lama.onnx",
        "loaded": None,
        "error": None,
    }


def test_engine_info_shows_lama_present_and_opens_it(lama_present, tiny_lama, capsys):
    call_command("engine_info", "--json", "--load")
    info = json.loads(capsys.readouterr().out)
    assert "lama" in info["engines"]
    assert info["lama"] == {
        "present": True,
        "path": str(tiny_lama.fixed),
        "size": tiny_lama.fixed.stat().st_size,
    }
    assert info["lama_load"] == "ok"


def test_engine_info_shows_lama_absent(lama_absent, capsys):
    call_command("engine_info", "--json", "--load")
    info = json.loads(capsys.readouterr().out)
    path = lama_absent.MODELS_DIR / "big-lama.onnx"
    assert "lama" not in info["engines"]
    assert info["lama"] == {"present": False, "path": str(path), "size": None}
    assert info["lama_load"].startswith(f"error: no LaMa model file at {path}")


def test_engine_info_reports_a_broken_file(settings, tmp_path, capsys):
    broken = tmp_path / "big-lama.onnx"
    broken.write_bytes(b"not an onnx graph")
    settings.MODELS_DIR = tmp_path
    call_command("engine_info", "--load")
    out = capsys.readouterr().out
    assert "present=True" in out and "Could not load the LaMa model" in out
