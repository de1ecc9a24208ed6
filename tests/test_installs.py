"""Model installs from a (fake, loopback) Hugging Face hub and plain URLs: what lands in the
library, progress, resume after a cut, cancel, refusals (pickles, gated without a token,
non-commercial where refused, a full disk, not found), removal. The install runs here, in the
test's process, as the housekeeping worker's task runs it; tests/browser/test_installs.py
runs one through the worker from the admin page."""

from __future__ import annotations

import errno
import html
import os
import threading
import time
from collections import namedtuple
from dataclasses import asdict
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from huggingface_hub import constants as hub_constants
from rest_framework.test import APIClient

from accounts.services import api_key_create
from inpainting import fleet, remote
from inpainting.conf import lama_file
from inpainting.engine.families import FAMILIES
from inpainting.errors import ClientError
from inpainting.models import INSTALL_KINDS, Generation, HubToken, LibraryModel, ModelInstall
from inpainting.services import installs, library, runs
from inpainting.services.models import backend_config, worker_models_served
from inpainting.testing.tiny_controlnet import write_tiny_controlnet
from inpainting.testing.tiny_ip_adapter import write_tiny_ip_adapter
from inpainting.testing.tiny_lora import write_tiny_eraser, write_tiny_lora
from inpainting.testing.tiny_masks import write_tiny_sam2, write_tiny_u2net
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests import fake_hub as hub_module
from tests.helpers import black_box_mask_png, image_png, post_img2img
from tests.live import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("installer")]

REPO = "tests/tiny-inpaint"


@pytest.fixture
def hub(fake_hub, tiny_model, models_dir, monkeypatch):
    """The fake hub with the tiny model as a diffusers repository (plus what an install must
    leave: a pickle, a root single-file checkpoint and an .fp16 copy of a weight); installs
    queue nothing (each test runs its install here)."""
    repo = fake_hub.add_folder(REPO, tiny_model)
    unet = "unet/diffusion_pytorch_model.safetensors"
    repo.files["unet/diffusion_pytorch_model.fp16.safetensors"] = repo.files[unet]
    repo.files["tiny-inpaint.ckpt"] = b"pickle"
    repo.files["tiny-inpaint.safetensors"] = repo.files[unet]
    monkeypatch.setattr(installs.queue, "send_install", lambda install: None)
    return fake_hub


def _install(user=None, **request) -> ModelInstall:
    seen: list[int] = []
    install = installs.install_create(user=user, **request)
    done = installs.install_run(
        install_id=str(install.pk), observer=lambda i: seen.append(i.bytes_done)
    )
    done.progress_seen = seen
    return done


def test_a_diffusers_repository_installs_by_repo_id_and_joins_the_library(hub, user, tiny_model):
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    model = LibraryModel.objects.get(kind=LibraryModel.Kind.CHECKPOINT, name="tiny-inpaint")
    assert (model.family, model.inpainting, model.present) == ("sd15", True, True)
    assert (model.licence, model.source) == ("apache-2.0", REPO)
    assert model.sha256 == install.sha256 and len(model.sha256) == 64
    folder = Path(settings.MODELS_DIR) / "tiny-inpaint"
    assert (folder / "model_index.json").is_file()
    wanted = sorted(str(p.relative_to(tiny_model)) for p in tiny_model.rglob("*") if p.is_file())
    got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert got == wanted  # no pickle, no root single file, no .fp16 copy, no hub bookkeeping
    fetched = {s.path.split("/resolve/main/")[1] for s in hub.seen if "/resolve/" in s.path}
    assert not fetched & {"tiny-inpaint.ckpt", "tiny-inpaint.safetensors"}
    assert "unet/diffusion_pytorch_model.fp16.safetensors" not in fetched
    total = sum((tiny_model / name).stat().st_size for name in wanted)
    assert install.bytes_total == install.bytes_done == total
    assert install.progress_seen[-1] == total and install.progress_seen == sorted(
        install.progress_seen
    )
    assert not (Path(settings.MODELS_DIR) / ".installs").exists() or not any(
        (Path(settings.MODELS_DIR) / ".installs").iterdir()
    )


def test_a_lora_installs_by_plain_url(hub, user, tiny_model, tmp_path):
    lora = write_tiny_lora(tiny_model, tmp_path / "ink.safetensors", layout="peft")
    hub.plain["ink.safetensors"] = lora.read_bytes()
    install = _install(user, source=f"{hub.files_url}/files/ink.safetensors", kind="lora")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    row = LibraryModel.objects.get(kind=LibraryModel.Kind.LORA, name="ink.safetensors")
    assert row.family == "sd15" and row.source.endswith("/files/ink.safetensors")
    assert (Path(settings.LORAS_DIR) / "ink.safetensors").read_bytes() == lora.read_bytes()
    assert install.bytes_total == install.bytes_done == lora.stat().st_size


def test_a_hub_file_url_installs_that_file(hub, user, tiny_model, tmp_path):
    lora = write_tiny_lora(tiny_model, tmp_path / "style.safetensors", layout="kohya")
    hub.repos["tests/loras"] = hub_module.Repo({"style.safetensors": lora.read_bytes()})
    install = _install(
        user, source=f"{hub.url}/tests/loras/blob/main/style.safetensors", kind="lora"
    )
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    assert LibraryModel.objects.loras().filter(name="style.safetensors").exists()


def test_a_gated_repository_needs_the_token_then_installs(hub, user, settings):
    hub.repos[REPO].gated = True
    refused = _install(user, source=REPO)
    assert refused.status == ModelInstall.Status.FAILED
    assert f"accept its licence at {hub.url}/{REPO}" in refused.error
    assert "token" in refused.error
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()
    assert not [s for s in hub.seen if "/resolve/" in s.path and s.method == "GET"]

    installs.hub_token_set(token=hub_module.TOKEN)
    assert installs.hub_token_source() == "the admin"
    assert hub_module.TOKEN not in HubToken.objects.get().encrypted  # encrypted at rest
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    assert all(s.authorized for s in hub.seen if "/resolve/" in s.path)
    assert hub_module.TOKEN not in str(installs.install_describe(install))


def test_a_download_cut_half_way_resumes_where_it_stopped(hub, user, monkeypatch):
    # huggingface_hub resumes from the blocks it wrote: blocks smaller than the tiny file.
    monkeypatch.setattr(hub_constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)
    weights = f"/{REPO}/resolve/main/unet/diffusion_pytorch_model.safetensors"
    hub.cut_once.add(weights)
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    gets = hub.gets("unet/diffusion_pytorch_model.safetensors")
    assert len(gets) == 2 and gets[0].range is None and gets[1].range.startswith("bytes=")
    assert int(gets[1].range[6:-1]) > 0  # the second answer starts where the first was cut
    size = len(hub.repos[REPO].files["unet/diffusion_pytorch_model.safetensors"])
    on_disk = Path(settings.MODELS_DIR) / "tiny-inpaint/unet/diffusion_pytorch_model.safetensors"
    assert on_disk.read_bytes() == hub.repos[REPO].files["unet/diffusion_pytorch_model.safetensors"]
    assert on_disk.stat().st_size == size


def test_a_plain_url_cut_half_way_resumes(hub, user, tiny_model, tmp_path):
    lora = write_tiny_lora(tiny_model, tmp_path / "ink.safetensors", layout="peft")
    hub.plain["ink.safetensors"] = lora.read_bytes()
    hub.cut_once.add("/files/ink.safetensors")
    install = _install(user, source=f"{hub.files_url}/files/ink.safetensors", kind="lora")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    gets = hub.gets("/files/ink.safetensors")
    assert len(gets) == 2 and gets[1].range and int(gets[1].range[6:-1]) > 0
    assert (Path(settings.LORAS_DIR) / "ink.safetensors").read_bytes() == lora.read_bytes()


def test_a_cancelled_install_leaves_nothing_in_the_library(hub, user):
    hub.bytes_per_second = 200_000  # the tiny model takes a few seconds
    install = installs.install_create(user=user, source=REPO)
    runner = threading.Thread(target=installs.install_run, kwargs={"install_id": str(install.pk)})
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        install.refresh_from_db()
        if install.bytes_done > 0:
            break
        time.sleep(0.05)
    assert install.status == ModelInstall.Status.RUNNING and install.bytes_done > 0
    assert installs.install_cancel(install=install)
    runner.join(30)
    assert not runner.is_alive()
    install.refresh_from_db()
    assert install.status == ModelInstall.Status.CANCELLED
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()
    assert not (Path(settings.MODELS_DIR) / "tiny-inpaint").exists()
    assert not installs._staging(install).exists()


@pytest.mark.parametrize("name", ["model.ckpt", "model.bin", "model.pt", "model.pkl"])
def test_a_pickle_is_refused_before_anything_is_downloaded(hub, user, name):
    hub.plain[name] = b"pickle"
    with pytest.raises(ClientError, match="is a pickle"):
        installs.install_create(user=user, source=f"{hub.files_url}/files/{name}")
    assert not hub.seen and not ModelInstall.objects.exists()


def test_a_repository_of_pickles_only_fails_with_the_reason(hub, user):
    hub.repos["tests/old"] = hub_module.Repo({"model.ckpt": b"x", "config.json": b"{}"})
    install = _install(user, source="tests/old")
    assert install.status == ModelInstall.Status.FAILED
    assert "only pickle weights (model.ckpt)" in install.error
    assert not hub.gets("model.ckpt")


def test_not_enough_disk_fails_before_the_first_byte(hub, user, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(installs.shutil, "disk_usage", lambda path: usage(100, 90, 10))
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.FAILED
    assert "Not enough disk" in install.error and "0.00 GB are free" in install.error
    assert not [s for s in hub.seen if s.method == "GET" and "/resolve/" in s.path]


class _FullDisk:
    """A file being written on a full disk: every write fails with ENOSPC."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.handle.close()

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)


@pytest.mark.parametrize("where", ["plain URL", "hub file"])
def test_a_disk_that_fills_up_mid_download_fails_at_once_with_the_reason(
    hub, user, tiny_model, tmp_path, monkeypatch, where
):
    lora = write_tiny_lora(tiny_model, tmp_path / "ink.safetensors", layout="peft")
    hub.plain["ink.safetensors"] = lora.read_bytes()
    hub.repos["tests/loras"] = hub_module.Repo({"ink.safetensors": lora.read_bytes()})
    source = {
        "plain URL": f"{hub.files_url}/files/ink.safetensors",
        "hub file": f"{hub.url}/tests/loras/resolve/main/ink.safetensors",
    }[where]
    staging = str(Path(settings.MODELS_DIR) / ".installs") + "/"
    real_open = Path.open

    def full_disk_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        writing = mode != "rb" and "b" in mode and str(path).startswith(staging)
        return _FullDisk(handle) if writing else handle

    monkeypatch.setattr(Path, "open", full_disk_open)
    started = time.monotonic()
    install = _install(user, source=source, kind="lora")
    assert install.status == ModelInstall.Status.FAILED
    assert install.error == "The disk filled up while downloading ink.safetensors."
    assert len(hub.gets("ink.safetensors")) == 1  # not retried as a network error
    assert time.monotonic() - started < 5
    assert not LibraryModel.objects.filter(name="ink.safetensors").exists()
    assert not installs._staging(install).exists()  # the partial file is not kept: disk freed


def test_an_unknown_repository_says_so(hub, user):
    install = _install(user, source="tests/nothing-here")
    assert install.status == ModelInstall.Status.FAILED
    assert install.error.startswith(f"tests/nothing-here was not found on {hub.url}")


def test_a_non_commercial_model_is_refused_where_the_deployment_says_so(hub, user, settings):
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    with pytest.raises(ClientError, match="does not allow commercial use") as refused:
        installs.install_create(user=user, source="flux1-fill-dev")
    assert refused.value.status == 403
    hub.repos[REPO].license = "flux-1-dev-non-commercial-license"
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.FAILED
    assert "FLUX.1 [dev] Non-Commercial License" in install.error
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()
    # FLUX.2 [klein] 9B's card (only the 4B is Apache 2.0) and Bria FIBO 2.0's, by name.
    for tag, name in (
        ("flux-non-commercial-license", "FLUX Non-Commercial License"),
        ("cc-by-nc-4.0", "CC BY-NC 4.0"),
        ("qwen-research", "Qwen Research License"),
    ):
        hub.repos[REPO].license = tag
        assert name in _install(user, source=REPO).error
    settings.ALLOW_NONCOMMERCIAL_MODELS = True
    assert installs.install_create(user=user, source="flux1-fill-dev").name == "flux1-fill-dev"


def test_removing_a_model_deletes_its_files_and_its_row(hub, user):
    assert _install(user, source=REPO).status == ModelInstall.Status.SUCCEEDED
    model = LibraryModel.objects.get(name="tiny-inpaint")
    freed = library.library_model_remove(model=model)
    assert freed > 0
    assert not (Path(settings.MODELS_DIR) / "tiny-inpaint").exists()
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()


def test_an_installed_model_cannot_be_installed_over(hub, user):
    assert _install(user, source=REPO).status == ModelInstall.Status.SUCCEEDED
    with pytest.raises(ClientError, match="in the library already") as refused:
        installs.install_create(user=user, source=REPO)
    assert refused.value.status == 409


def test_the_starter_list_names_licences_sizes_and_vram():
    described = installs.install_starters_described()
    keys = {entry["key"] for entry in described}
    assert {"sd15-inpainting", "sdxl-inpainting", "flux1-fill-dev", "flux2-klein-4b"} <= keys
    assert {"qwen-image-edit", "qwen-image-edit-2509", "flux1-kontext-dev", "sam3"} <= keys
    assert "lama" in keys  # the lama engine's file (issue 77)
    for entry in described:
        assert entry["licence"]["name"] and entry["licence"]["url"].startswith("https://")
        assert entry["size_gb"] > 0 and entry["vram_gb"] > 0
        assert entry["kind"] in dict(INSTALL_KINDS)
    for entry in described:  # a family whose every model is under one licence: the same
        family = FAMILIES.get(entry["family"])
        if family is not None and family.licence:
            assert entry["licence"]["key"] == family.licence, entry["key"]
    non_commercial = {e["key"] for e in described if e["licence"]["commercial"] is False}
    assert non_commercial == {
        "flux1-fill-dev",
        "flux1-kontext-dev",
        "fibo-2-dev",
        "qwen-image-2-1",
        "flux-3-klein",
        "flux-3-klein-base",
    }
    gated = {e["key"] for e in described if e["gated"]}
    assert {"flux1-fill-dev", "flux1-kontext-dev", "flux-3-klein"} <= gated


def test_a_starters_gpu_memory_is_computed_as_the_librarys(client, staff_user, settings):
    """One figure for one model: a diffusion starter gives its weights (``parts_gb``), not a
    GPU memory written by hand (it said 16 GB for FLUX.2 [klein] 4B while the library
    computed 19.2 GB); the install page shows what the library shows for the same weights,
    with the deployment's headroom."""
    starter = next(s for s in installs.starters() if s.key == "flux2-klein-4b")
    row = LibraryModel(
        kind=LibraryModel.Kind.CHECKPOINT,
        name="klein",
        family="flux2-klein",
        layout=LibraryModel.Layout.DIFFUSERS,
        details={"parts": asdict(starter.parts)},
    )
    assert library.library_model_memory(row) == library.memory_needs_gb(starter.parts)
    described = next(e for e in installs.install_starters_described() if e["key"] == starter.key)
    assert described["vram"] == "19.2 GB (from 7.3 GB)" and described["vram_gb"] == 19.2
    assert described["vram_by_plan_gb"]["fp8-text-encoder-offload"] == 7.3
    client.force_login(staff_user)
    page = client.get("/admin/inpainting/modelinstall/").content.decode()
    listed = page[page.index('data-starter="flux2-klein-4b"') :]
    assert "<td>19.2 GB (from 7.3 GB)</td>" in listed[: listed.index("</tr>")]
    settings.MODEL_MEMORY_HEADROOM_GB = 5
    page = client.get("/admin/inpainting/modelinstall/").content.decode()
    listed = page[page.index('data-starter="flux2-klein-4b"') :]
    assert "<td>21.3 GB (from 9.4 GB)</td>" in listed[: listed.index("</tr>")]


def test_the_upscaler_starter_installs_as_a_file_the_scan_takes(
    hub, user, client, staff_user, tmp_path
):
    upscaler = write_tiny_real_esrgan(tmp_path / "RealESRGAN_x4.pth")
    starter = next(s for s in installs.starters() if s.key == "real-esrgan-x4")
    hub.repos[starter.repo] = hub_module.Repo(
        {starter.file: upscaler.read_bytes()}, license="bsd-3-clause"
    )
    install = _install(user, source="real-esrgan-x4")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    assert (install.kind, install.name) == ("upscaler", "real-esrgan-x4.pth")
    row = LibraryModel.objects.upscalers().get(name="real-esrgan-x4.pth")
    assert (row.kind, row.present, row.details["scale"]) == ("upscaler", True, 4)
    assert (row.licence, row.source) == ("bsd-3-clause", f"{starter.repo}/{starter.file}")
    on_disk = Path(settings.UPSCALERS_DIR) / "real-esrgan-x4.pth"
    assert on_disk.read_bytes() == upscaler.read_bytes()
    client.force_login(staff_user)
    page = client.get("/admin/inpainting/modelinstall/").content.decode()
    listed = page[page.index('data-starter="real-esrgan-x4"') :]
    listed = listed[: listed.index("</tr>")]
    assert "installed" in listed and "Install</button>" not in listed


def test_a_diffusers_starter_installs_under_its_key(hub, user, tiny_model):
    hub.add_folder("stable-diffusion-v1-5/stable-diffusion-inpainting", tiny_model)
    install = _install(user, source="sd15-inpainting")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    model = LibraryModel.objects.get(kind=LibraryModel.Kind.CHECKPOINT, name="sd15-inpainting")
    assert (model.family, model.inpainting, model.licence) == (
        "sd15",
        True,
        "creativeml-openrail-m",
    )
    assert (Path(settings.MODELS_DIR) / "sd15-inpainting" / "model_index.json").is_file()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("not a repo", "neither a Hugging Face repo id"),
        ("ftp://example.com/a.safetensors", "neither a Hugging Face repo id"),
        ("https://huggingface.co/org", "must name a repository"),
        ("https://example.com/model.zip", "not a weights file"),
    ],
)
def test_a_source_that_cannot_be_installed_is_a_400(source, message):
    with pytest.raises(ClientError, match=message):
        installs.install_create(user=None, source=source)


# --- the API (staff keys) and the CLI -----------------------------------------------------------


def test_only_staff_reach_the_installs_api(hub, api, keyed_api):
    for client in (api, keyed_api):
        assert client.get("/api/models/installs").status_code == 403
        assert client.post("/api/models/installs", {"source": REPO}).status_code == 403
    assert not ModelInstall.objects.exists()


def test_a_staff_key_installs_follows_and_cancels(hub, staff_user):
    _, key = api_key_create(user=staff_user, name="ops")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    listed = client.get("/api/models/installs").json()
    assert listed["token"] is None and listed["allow_noncommercial"] is True
    assert {"sd15-inpainting", "flux1-fill-dev"} <= {s["key"] for s in listed["starters"]}

    started = client.post("/api/models/installs", {"source": REPO}, format="json")
    assert started.status_code == 202, started.content
    body = started.json()
    assert (body["status"], body["name"], body["kind"]) == ("queued", "tiny-inpaint", "checkpoint")
    assert client.get(f"/api/models/installs/{body['id']}").json()["status"] == "queued"
    cancelled = client.delete(f"/api/models/installs/{body['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.delete(f"/api/models/installs/{body['id']}")
    assert again.status_code == 409 and "has ended" in again.json()["message"]

    refused = client.post(
        "/api/models/installs", {"source": f"{hub.files_url}/files/m.ckpt"}, format="json"
    )
    assert refused.status_code == 400 and "is a pickle" in refused.json()["message"]


def test_the_cli_installs_with_a_progress_bar_and_removes(hub, capsys):
    call_command("models", "install", REPO)
    out = capsys.readouterr().out
    assert f"Installing {REPO} as checkpoint tiny-inpaint" in out
    assert "installed: tiny-inpaint (sha256 " in out and "100%" in out
    assert LibraryModel.objects.filter(name="tiny-inpaint", present=True).exists()
    call_command("models", "remove", "tiny-inpaint")
    assert "removed: tiny-inpaint" in capsys.readouterr().out
    assert not (Path(settings.MODELS_DIR) / "tiny-inpaint").exists()
    assert not LibraryModel.objects.filter(name="tiny-inpaint").exists()


def test_the_cli_says_why_an_install_failed(hub):
    with pytest.raises(CommandError, match="failed: tests/gone was not found"):
        call_command("models", "install", "tests/gone")


def test_a_download_link_that_names_no_file_installs_under_the_given_name(
    hub, user, tiny_model, tmp_path
):
    lora = write_tiny_lora(tiny_model, tmp_path / "x.safetensors", layout="peft")
    hub.plain["12345"] = lora.read_bytes()  # Civitai's /api/download/models/<id> pattern
    link = f"{hub.files_url}/files/12345"
    with pytest.raises(ClientError, match="give the model's name"):
        installs.install_create(user=user, source=link, kind="lora")
    install = _install(user, source=link, kind="lora", name="style.safetensors")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    assert LibraryModel.objects.loras().filter(name="style.safetensors").exists()


def test_a_pickle_behind_a_link_that_names_no_file_is_refused_by_the_scan(hub, user):
    hub.plain["666"] = b"\x80\x04\x95" + b"x" * 64  # a pickle's first bytes, not safetensors
    install = _install(
        user, source=f"{hub.files_url}/files/666", kind="lora", name="evil.safetensors"
    )
    assert install.status == ModelInstall.Status.FAILED
    assert install.error.startswith("The library refused it:")
    assert not (Path(settings.LORAS_DIR) / "evil.safetensors").exists()
    assert not LibraryModel.objects.filter(name="evil.safetensors").exists()


def test_a_controlnet_folder_an_upscaler_file_and_lama_install_into_their_places(
    hub, user, tiny_model, tiny_lama, tmp_path
):
    controlnet = write_tiny_controlnet(tiny_model, tmp_path / "inpaint-cn")
    hub.add_folder("tests/inpaint-cn", controlnet)
    upscaler = write_tiny_real_esrgan(tmp_path / "RealESRGAN_x4.pth")
    hub.repos["tests/esrgan"] = hub_module.Repo({"RealESRGAN_x4.pth": upscaler.read_bytes()})
    hub.repos["tests/lama"] = hub_module.Repo({"lama_fp32.onnx": tiny_lama.fixed.read_bytes()})

    done = _install(user, source="tests/inpaint-cn", kind="controlnet")
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    assert LibraryModel.objects.controlnets().get(name="inpaint-cn").family == "sd15"
    assert (Path(settings.CONTROLNETS_DIR) / "inpaint-cn" / "config.json").is_file()

    with pytest.raises(ClientError, match="is a pickle"):  # a .pth: for an upscaler only
        installs.install_create(
            user=user, source=f"{hub.url}/tests/esrgan/resolve/main/RealESRGAN_x4.pth"
        )
    done = _install(
        user, source=f"{hub.url}/tests/esrgan/resolve/main/RealESRGAN_x4.pth", kind="upscaler"
    )
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    row = LibraryModel.objects.upscalers().get(name="RealESRGAN_x4.pth")
    assert row.details["scale"] == 4

    done = _install(user, source=f"{hub.url}/tests/lama/resolve/main/lama_fp32.onnx", kind="lama")
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    assert lama_file().read_bytes() == tiny_lama.fixed.read_bytes()


def test_an_erase_adapter_installs_as_a_folder_with_its_embedding_and_licence(
    hub, user, klein_weights, tmp_path
):
    """slopshop/erase-v1's layout by repo id: its LoRA and its prompt embedding land in one
    folder of ERASERS_DIR, and the scan records it for FLUX.2 [klein] with the card's
    licence; its README does not come along."""
    adapter = write_tiny_eraser(klein_weights, tmp_path / "erase-v1")
    repo = hub.add_folder("slopshop/erase-v1", adapter, license="apache-2.0")
    repo.files["README.md"] = b"# erase_v1"
    done = _install(user, source="slopshop/erase-v1", kind="eraser")
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    folder = Path(settings.ERASERS_DIR) / "erase-v1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "erase_v1_diffusers.safetensors",
        "prompt_embeds.safetensors",
    ]
    row = LibraryModel.objects.get(kind=LibraryModel.Kind.ERASER, name="erase-v1")
    assert (row.family, row.licence, row.layout) == ("flux2-klein", "apache-2.0", "adapter")


def test_selection_models_install_a_sam_folder_and_a_rembg_file(
    hub, user, api, mask_models_dir, tmp_path
):
    sam = write_tiny_sam2(tmp_path / "sam2.1")
    hub.add_folder("facebook/sam2.1-hiera-large", sam)
    hub.plain["u2net.onnx"] = write_tiny_u2net(tmp_path / "u2net.onnx").read_bytes()

    done = _install(user, source="sam2.1-hiera-large")  # the starter: kind mask
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    assert (mask_models_dir / "sam2.1-hiera-large" / "config.json").is_file()
    with pytest.raises(ClientError, match="not a weights file"):  # .onnx: mask models, LaMa
        installs.install_create(user=user, source=f"{hub.files_url}/files/u2net.onnx")
    done = _install(user, source=f"{hub.files_url}/files/u2net.onnx", kind="mask")
    assert done.status == ModelInstall.Status.SUCCEEDED, done.error
    assert (mask_models_dir / "u2net.onnx").read_bytes() == hub.plain["u2net.onnx"]

    rows = {m.name: m for m in LibraryModel.objects.mask_models()}
    assert (rows["sam2.1-hiera-large"].family, rows["u2net.onnx"].family) == ("sam2", "rembg")
    assert rows["sam2.1-hiera-large"].licence == "apache-2-0"
    assert rows["u2net.onnx"].sha256 == done.sha256
    listed = {m["name"]: m for m in api.get("/api/mask-models").json()["mask_models"]}
    assert listed["sam2.1-hiera-large"]["methods"] == ["sam"]
    assert listed["u2net.onnx"]["methods"] == ["background"]


def test_an_ip_adapter_file_of_h94s_layout_installs_with_its_image_encoder(
    hub, user, api, tiny_model, tmp_path
):
    # h94/IP-Adapter: several adapters beside the image_encoder/ they share, per folder.
    sd15 = write_tiny_ip_adapter(tiny_model, tmp_path / "sd15")
    plus = write_tiny_ip_adapter(tiny_model, tmp_path / "plus", seed=1)
    encoder = sd15 / "image_encoder"
    files = {
        "models/ip-adapter_sd15.safetensors": (sd15 / "ip-adapter.safetensors").read_bytes(),
        "models/ip-adapter-plus_sd15.safetensors": (plus / "ip-adapter.safetensors").read_bytes(),
        "models/image_encoder/pytorch_model.bin": b"pickle",
        "sdxl_models/ip-adapter_sdxl.safetensors": (plus / "ip-adapter.safetensors").read_bytes(),
        "lonely/ip-adapter_sd15.safetensors": (sd15 / "ip-adapter.safetensors").read_bytes(),
    }
    for path in encoder.iterdir():
        files[f"models/image_encoder/{path.name}"] = path.read_bytes()
        files[f"sdxl_models/image_encoder/{path.name}"] = path.read_bytes()
    hub.repos["h94/IP-Adapter"] = hub_module.Repo(files)

    url = f"{hub.url}/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors"
    install = _install(user, source=url, kind="ip-adapter")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    folder = Path(settings.IP_ADAPTERS_DIR) / "ip-adapter_sd15"
    got = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert got == sorted(
        ["ip-adapter_sd15.safetensors"] + [f"image_encoder/{p.name}" for p in encoder.iterdir()]
    )
    fetched = {s.path.split("/resolve/main/")[1] for s in hub.seen if "/resolve/" in s.path}
    assert fetched == {
        p for p in files if p.startswith("models/") and "plus" not in p and ".bin" not in p
    }
    row = LibraryModel.objects.get(kind=LibraryModel.Kind.IP_ADAPTER, name="ip-adapter_sd15")
    assert (row.family, row.source) == ("sd15", "h94/IP-Adapter/models/ip-adapter_sd15.safetensors")
    listed = api.get("/api/ip-adapters").json()["ip_adapters"]
    assert [(a["name"], a["family"]) for a in listed] == [("ip-adapter_sd15", "sd15")]

    lonely = f"{hub.url}/h94/IP-Adapter/resolve/main/lonely/ip-adapter_sd15.safetensors"
    refused = _install(user, source=lonely, kind="ip-adapter", name="lonely")
    assert refused.status == ModelInstall.Status.FAILED
    assert "no image encoder beside lonely/ip-adapter_sd15.safetensors" in refused.error


def test_the_admin_page_refuses_a_non_commercial_starter_where_the_deployment_says_so(
    hub, client, staff_user, settings
):
    settings.ALLOW_NONCOMMERCIAL_MODELS = False
    client.force_login(staff_user)
    page = client.get("/admin/inpainting/modelinstall/").content.decode()
    fill = page[page.index('data-starter="flux1-fill-dev"') :]
    fill = fill[: fill.index("</tr>")]
    assert "non-commercial" in fill and "refused here" in fill and "Install</button>" not in fill
    klein = page[page.index('data-starter="flux2-klein-4b"') :]
    assert "Install</button>" in klein[: klein.index("</tr>")]
    answer = client.post(
        "/admin/inpainting/modelinstall/install/", {"source": "flux1-fill-dev"}, follow=True
    )
    assert "does not allow commercial use" in answer.content.decode()
    assert not ModelInstall.objects.exists()


def test_the_model_list_shows_the_licence_and_the_memory_each_plan_needs(hub, user, api):
    assert _install(user, source=REPO).status == ModelInstall.Status.SUCCEEDED
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    model = listed["tiny-inpaint"]
    assert model["licence"] == "apache-2.0" and model["quantization"] is None
    # A UNet: no fp8 plan; the headroom (3 GiB) dominates a tiny model's needs.
    assert list(model["memory_gb"]) == [
        "gpu",
        "text-encoder-offload",
        "model-offload",
        "sequential",
    ]
    assert model["memory_gb"]["sequential"] == round(3 * 1024**3 / 1e9, 1)
    assert model["memory_gb"]["gpu"] >= model["memory_gb"]["model-offload"]


def test_a_models_own_memory_plan_is_what_its_worker_runs_it_with(hub, user, settings):
    assert _install(user, source=REPO).status == ModelInstall.Status.SUCCEEDED
    model = LibraryModel.objects.get(name="tiny-inpaint")
    settings.MODEL_MEMORY_PLAN = "auto"
    assert backend_config("diffusers", model).memory_plan == "auto"
    model.memory_plan = "model-offload"  # staff set it in the admin
    model.save()
    assert backend_config("diffusers", model).memory_plan == "model-offload"
    library.library_scan()  # a rescan keeps what staff chose
    model.refresh_from_db()
    assert model.memory_plan == "model-offload"


def test_a_download_past_the_size_cap_or_the_disk_margin_fails_first(hub, user, settings):
    """Issue 76, finding 7: a download has a size cap and leaves a margin of the disk free,
    both checked before the first byte of a file whose size is known."""
    settings.INSTALL_MAX_BYTES = 1000
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.FAILED
    assert "installs here are at most 0.00 GB (INSTALL_MAX_BYTES)" in install.error
    assert not installs._staging(install).exists()  # nothing kept: it could never finish
    settings.INSTALL_MAX_BYTES = 10**12
    settings.INSTALL_FREE_DISK_BYTES = 10**15  # more than any disk here has
    install = _install(user, source=REPO)
    assert install.status == ModelInstall.Status.FAILED
    assert "(INSTALL_FREE_DISK_BYTES)" in install.error
    assert not [s for s in hub.seen if s.method == "GET" and "/resolve/" in s.path]


def test_installs_of_other_sources_under_one_name_never_share_a_partial_file(hub, user):
    """Issue 76, finding 7: resuming was keyed by the name alone, so a later install of another
    URL under the same name continued the first one's file (a model spliced from two)."""

    def failed(file: str) -> ModelInstall:
        source = f"{hub.files_url}/files/{file}"
        install = installs.install_create(user=user, source=source, kind="lora", name="ink")
        ModelInstall.objects.filter(pk=install.pk).update(status=ModelInstall.Status.FAILED)
        return install

    first, second, again = failed("a.safetensors"), failed("b.safetensors"), failed("a.safetensors")
    assert installs._staging(first) != installs._staging(second)
    assert installs._staging(first) == installs._staging(again)  # the same source resumes


def test_a_resume_of_a_file_that_changed_on_the_server_starts_afresh(
    hub, user, tiny_model, tmp_path, monkeypatch
):
    """Issue 76, finding 7: a resume asks for the rest of the same version only (``If-Range``
    with the ``ETag`` its first part came with); a file changed since comes whole, and the
    model installed is the new file, not the old one's start spliced to the new one's end."""
    old = write_tiny_lora(tiny_model, tmp_path / "old.safetensors", layout="peft").read_bytes()
    new = write_tiny_lora(tiny_model, tmp_path / "new.safetensors", layout="kohya").read_bytes()
    assert old != new
    once = remote.download  # one attempt: the cut fails the first install
    monkeypatch.setattr(remote, "download", lambda *a, **k: once(*a, **{**k, "attempts": 1}))
    hub.plain["ink.safetensors"] = old
    hub.cut_once.add("/files/ink.safetensors")
    source = f"{hub.files_url}/files/ink.safetensors"
    failed = _install(user, source=source, kind="lora")
    assert failed.status == ModelInstall.Status.FAILED
    assert 0 < (installs._staging(failed) / "ink.safetensors").stat().st_size < len(old)
    hub.plain["ink.safetensors"] = new  # replaced on the server meanwhile
    again = _install(user, source=source, kind="lora")
    assert again.status == ModelInstall.Status.SUCCEEDED, again.error
    second = hub.gets("/files/ink.safetensors")[-1]
    assert second.range  # it asked to resume, with If-Range, and got the whole new file
    assert (Path(settings.LORAS_DIR) / "ink.safetensors").read_bytes() == new


def test_a_single_file_install_reads_its_file_once_for_its_digest(
    hub, user, tiny_model, tmp_path, monkeypatch
):
    """The install hashes the file as it lands and the scan records that digest: a 24 GB
    checkpoint was read twice (once by the install, once by the scan's own hasher)."""
    lora = write_tiny_lora(tiny_model, tmp_path / "once.safetensors", layout="peft")
    hub.plain["once.safetensors"] = lora.read_bytes()
    hashed: list[Path] = []
    real = library.weights_sha256

    def counting(path, files=None):
        hashed.append(Path(path))
        return real(path, files)

    monkeypatch.setattr(library, "weights_sha256", counting)
    monkeypatch.setattr(installs, "weights_sha256", counting)
    install = _install(user, source=f"{hub.files_url}/files/once.safetensors", kind="lora")
    assert install.status == ModelInstall.Status.SUCCEEDED, install.error
    assert len(hashed) == 1
    row = LibraryModel.objects.get(kind=LibraryModel.Kind.LORA, name="once.safetensors")
    assert row.sha256 == install.sha256 == real(Path(settings.LORAS_DIR) / "once.safetensors")


def test_offline_an_install_is_one_failure_in_words_and_no_traceback(
    hub, client, installer, settings, caplog
):
    """No network: the admin's install says so at once, in words with the way without one
    (no "installing" banner beside it, no row); the command line's is one line; an install
    queued before the network went fails in the same words, and nothing logs a traceback."""
    offline = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.HF_ENDPOINT = offline
    client.force_login(installer)
    page = client.post("/admin/inpainting/modelinstall/install/", {"source": REPO}, follow=True)
    said = [(m.level_tag, m.message) for m in page.context["messages"]]
    assert len(said) == 1 and said[0][0] == "error", said
    assert said[0][1].startswith(f"This server cannot reach the Hugging Face hub ({offline})")
    assert "copy its file or folder" in said[0][1] and "manage.py models scan" in said[0][1]
    assert not ModelInstall.objects.exists()
    with pytest.raises(CommandError) as raised:
        call_command("models", "install", REPO)
    assert str(raised.value) == said[0][1]  # one line
    settings.HF_ENDPOINT = hub.url
    queued = installs.install_create(user=installer, source=REPO)
    settings.HF_ENDPOINT = offline
    failed = installs.install_run(install_id=str(queued.pk))
    assert failed.status == ModelInstall.Status.FAILED
    assert failed.error == said[0][1]  # nothing was kept: nothing resumes
    assert "Traceback" not in caplog.text
    settings.HF_ENDPOINT = hub.url
    page = client.post("/admin/inpainting/modelinstall/install/", {"source": REPO}, follow=True)
    said = [(m.level_tag, m.message) for m in page.context["messages"]]
    assert said == [("info", "tiny-inpaint: install queued; its progress is below.")]


def test_a_model_installed_from_the_admin_runs_with_no_restart(hub, client, installer, settings):
    """LOAD_SD_INPAINT unset, as `make run` starts: no diffusion model, the classical engine
    runs. Installed from the admin's page (the housekeeping worker's task run here), the model
    is offered, a worker serves it and the next job runs on it: no process restarted."""
    settings.LOAD_SD_INPAINT, settings.INPAINT_ENGINE = None, "auto"
    user = APIClient()
    user.force_authenticate(installer)
    assert user.get("/api/models").json()["models"] == []
    assert worker_models_served() == []
    before = post_img2img(user, image_png(), black_box_mask_png(), prompt="a rose", wait="false")
    assert Generation.objects.get(pk=before.json()["id"]).engine == "classical"  # as queued
    client.force_login(installer)
    page = client.get("/admin/inpainting/modelinstall/").content.decode()
    assert 'data-starter="sd15-inpainting"' in page
    client.post("/admin/inpainting/modelinstall/install/", {"source": REPO}, follow=True)
    install = ModelInstall.objects.get()
    assert installs.install_run(install_id=str(install.pk)).status == "succeeded"
    assert [m["name"] for m in user.get("/api/models").json()["models"]] == ["tiny-inpaint"]
    assert [m.name for m in worker_models_served()] == ["tiny-inpaint"]
    # What the worker's reporter says once it consumes the model's queue.
    fleet.report_write("installs@tests:1", {"worker": "installs@tests", "models": ["tiny-inpaint"]})
    try:
        sent = post_img2img(
            user, image_png(), black_box_mask_png(), prompt="a red rose", wait="false"
        )
        assert sent.status_code == 202, sent.content
        runs.generation_run(generation_id=sent.json()["id"])  # what the worker calls
    finally:
        fleet.report_remove("installs@tests:1")
    done = user.get(f"/api/generations/{sent.json()['id']}/").json()
    assert done["status"] == "succeeded", done
    assert (done["metadata"]["engine"], done["metadata"]["model"]) == ("diffusers", "tiny-inpaint")


def test_the_install_page_says_what_this_servers_gpu_runs(client, installer):
    """Next to each starter's needs, what this server's workers (their reports) run it on."""
    client.force_login(installer)

    def here() -> tuple[str, dict[str, str]]:
        page = html.unescape(client.get("/admin/inpainting/modelinstall/").content.decode())
        said = page[page.index('<p id="here">') :].split("</p>", 1)[0]
        cells = {}
        for key in ("sd15-inpainting", "flux1-fill-dev", "qwen-image-edit", "real-esrgan-x4"):
            row = page[page.index(f'data-starter="{key}"') :].split("</tr>", 1)[0]
            cells[key] = row.split('<td class="here">', 1)[1].split("</td>", 1)[0]
        return said, cells

    fleet.report_write("cpu@tests:1", {"worker": "cpu@tests", "device": "cpu", "gpu_memory": None})
    try:
        said, cells = here()
        assert "have no GPU: a diffusion model runs on the CPU" in said
        assert cells["sd15-inpainting"] == "no GPU here: on the CPU, minutes a picture"
        assert cells["real-esrgan-x4"] == "runs here (on the CPU too)"
        report = {"worker": "gpu@tests", "device": "cuda", "gpu_memory": 20_000_000_000}
        fleet.report_write("gpu@tests:1", report)
        said, cells = here()
        assert "This server's largest GPU has 20 GB of memory." in said
        assert cells["sd15-inpainting"] == "fits this GPU"
        assert cells["flux1-fill-dev"] == "fits this GPU with a memory plan (from 15.3 GB)"
        assert cells["qwen-image-edit"] == "needs more than this GPU's 20 GB"  # from 23.9
    finally:
        fleet.report_remove("cpu@tests:1")
        fleet.report_remove("gpu@tests:1")
