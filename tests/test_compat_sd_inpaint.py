"""The SD Inpainting API's own client examples, run unchanged (plus the API key header)
against a live server: its curl and Python requests examples, and the health check."""

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings
from PIL import Image, ImageDraw

from inpainting.models import Generation
from tests.conftest import child_env
from tests.images import gradient
from tests.live import daphne_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def server(django_db_blocker):
    """One daphne for the module's tests (each start costs seconds of CPU)."""
    with django_db_blocker.unblock():
        env = child_env()
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-sd.log") as url:
        yield url


@pytest.fixture
def documents(tmp_path):
    """input.jpg and mask.png exactly as the document builds its mask (PIL example)."""
    gradient(512, 512).save(tmp_path / "input.jpg", quality=95)
    mask = Image.new("RGB", (512, 512), color="black")
    draw = ImageDraw.Draw(mask)
    draw.rectangle([100, 100, 400, 400], fill="white")
    mask.save(tmp_path / "mask.png")
    return tmp_path


def assert_white_inpainted_black_kept(result: bytes, folder: Path) -> None:
    out = np.asarray(Image.open(io.BytesIO(result)).convert("RGB"))
    original = np.asarray(Image.open(folder / "input.jpg").convert("RGB"))
    mask = np.asarray(Image.open(folder / "mask.png").convert("L"))
    assert out.shape == original.shape == (512, 512, 3)
    assert (out[mask == 0] == original[mask == 0]).all()  # black = keep, exactly
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.5


def test_the_curl_example(server, documents, api_key):
    subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "POST",
            f"{server}/sd-inpaint/inpaint",
            "-H",
            f"Authorization: Api-Key {api_key}",
            "-F",
            "image=@input.jpg",
            "-F",
            "mask=@mask.png",
            "-F",
            "prompt=a beautiful red rose",
            "-F",
            "negative_prompt=blurry, low quality",
            "-F",
            "num_inference_steps=50",
            "-F",
            "guidance_scale=7.5",
            "-F",
            "seed=42",
            "--output",
            "result.png",
        ],
        cwd=documents,
        check=True,
        timeout=120,
    )
    result = (documents / "result.png").read_bytes()
    assert result.startswith(b"\x89PNG")
    assert_white_inpainted_black_kept(result, documents)
    generation = Generation.objects.get()
    assert generation.client == "sd-inpaint" and generation.seed == 42
    assert generation.params["num_inference_steps"] == 50
    assert generation.params["mask_mode"] == "white_inpaints"


def test_the_python_requests_example(server, documents, api_key):
    url = f"{server}/sd-inpaint/inpaint"
    with (
        open(documents / "input.jpg", "rb") as img_file,
        open(documents / "mask.png", "rb") as mask_file,
    ):
        files = {"image": img_file, "mask": mask_file}
        data = {
            "prompt": "a beautiful red rose",
            "negative_prompt": "blurry, low quality",
            "num_inference_steps": 50,
            "guidance_scale": 7.5,
            "seed": 42,
        }
        response = requests.post(
            url, files=files, data=data, headers={"X-API-Key": api_key}, timeout=120
        )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert_white_inpainted_black_kept(response.content, documents)


def test_defaults_apply_and_black_pixels_are_kept(server, documents, api_key):
    mask = Image.new("L", (512, 512), 0)
    mask.paste(128, (100, 100, 200, 200))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    files = {"image": open(documents / "input.jpg", "rb"), "mask": ("m.png", buffer.getvalue())}
    response = requests.post(
        f"{server}/sd-inpaint/inpaint",
        files=files,
        data={"prompt": "x"},
        headers={"X-API-Key": api_key},
        timeout=120,
    )
    assert response.status_code == 200
    generation = Generation.objects.get()
    assert generation.seed == 42 and generation.params["num_inference_steps"] == 50
    assert generation.params["guidance_scale"] == 7.5
    out = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    original = np.asarray(Image.open(documents / "input.jpg").convert("RGB")).astype(int)
    assert (out[300:, 300:] == original[300:, 300:]).all()


def test_errors_as_the_document_lists_them(server, documents, api_key):
    headers = {"X-API-Key": api_key}
    url = f"{server}/sd-inpaint/inpaint"
    bad = requests.post(
        url,
        files={"image": ("input.jpg", b"not an image"), "mask": open(documents / "mask.png", "rb")},
        data={"prompt": "x"},
        headers=headers,
        timeout=30,
    )
    assert bad.status_code == 400 and "image" in bad.json()["errors"]
    small = io.BytesIO()
    Image.new("RGB", (256, 256), "white").save(small, format="PNG")  # same aspect, other size
    mismatch = requests.post(
        url,
        files={
            "image": open(documents / "input.jpg", "rb"),
            "mask": ("mask.png", small.getvalue()),
        },
        data={"prompt": "x"},
        headers=headers,
        timeout=30,
    )
    assert mismatch.status_code == 400
    assert "Image and mask size mismatch" in mismatch.json()["message"]
    anonymous = requests.post(
        url,
        files={
            "image": open(documents / "input.jpg", "rb"),
            "mask": open(documents / "mask.png", "rb"),
        },
        data={"prompt": "x"},
        timeout=30,
    )
    assert anonymous.status_code == 401
    assert Generation.objects.count() == 0


def test_health(server):
    body = requests.get(f"{server}/sd-inpaint/health", timeout=10).json()
    assert body["status"] == "healthy"
    assert body["service"] == "stable-diffusion-inpaint"
    assert (
        body["model"] == "hybrid-patchmatch-poisson"
    )  # the engine that answers (classical in the tests)
