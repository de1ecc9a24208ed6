"""Issue 77, item 1: LaMa wherever it can be had. ``make run`` runs ``manage.py models
lama-auto`` beside the stack (tests/test_stack.py: offline, one line, start-up not waiting);
here the install itself, from a fake hub on loopback serving a tiny LaMa graph as the starter
list's ``Carve/LaMa-ONNX`` ``lama_fp32.onnx``, after which a removal runs on LaMa."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from inpainting.conf import engine_config, lama_file
from inpainting.models import ModelInstall
from inpainting.services import install_sources, installs, runs
from tests import fake_hub as hub_module
from tests.helpers import black_box_mask_png, image_png, post_img2img, wait_for_status
from tests.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lama_hub(fake_hub, models_dir, tiny_lama, settings):
    """The fake hub with LaMa's repository (the tiny graph, with the SHA-256 the hub reports),
    the web process on the auto engine, and no LaMa file yet."""
    graph = tiny_lama.fixed.read_bytes()
    fake_hub.repos["Carve/LaMa-ONNX"] = hub_module.Repo(
        {"lama_fp32.onnx": graph}, lfs={"lama_fp32.onnx": hashlib.sha256(graph).hexdigest()}
    )
    settings.INPAINT_ENGINE = "auto"
    settings.LOAD_SD_INPAINT = False
    assert not lama_file().exists()
    yield fake_hub
    lama_file().unlink(missing_ok=True)


def test_lama_is_installed_at_the_first_start_and_then_removes(lama_hub, user, capsys):
    call_command("models", "lama-auto")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Installing LaMa (Carve/LaMa-ONNX/lama_fp32.onnx, 0.21 GB)")
    assert any(line.startswith("LaMa: 100 % of") for line in lines), lines
    assert lines[-1].startswith("LaMa installed (sha256 ")
    install = ModelInstall.objects.get()
    assert (install.status, install.kind, install.starter) == ("succeeded", "lama", "lama")
    assert install.sha256 == hashlib.sha256(lama_file().read_bytes()).hexdigest()
    # Installed: a removal without a prompt runs on LaMa, and says so.
    assert engine_config().choose(None, "") == "lama"
    api = APIClient()
    api.force_login(user)
    response = post_img2img(api, image_png(), black_box_mask_png(), wait="false")
    assert response.status_code == 202, response.content
    # Run here, or by the session's worker where another module started one (it has LaMa too).
    runs.generation_run(generation_id=response.json()["id"])
    generation = wait_for_status(response.json()["id"], timeout=60)
    assert (generation.status, generation.engine) == ("succeeded", "lama"), generation.error
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["metadata"]["engine"] == "lama"
    # The next start finds it: nothing to do, nothing said.
    call_command("models", "lama-auto")
    assert capsys.readouterr().out == "" and ModelInstall.objects.count() == 1


def test_offline_one_line_and_nothing_else(lama_hub, settings):
    settings.HF_ENDPOINT = f"http://127.0.0.1:{free_port()}"  # nothing listens
    said = []
    started = time.monotonic()
    assert installs.lama_auto_install(say=said.append) is None
    assert time.monotonic() - started < install_sources.HUB_PROBE_SECONDS
    assert len(said) == 1
    assert "does not answer: the classical engine removes objects" in said[0]
    assert f"copy lama_fp32.onnx (Carve/LaMa-ONNX/lama_fp32.onnx) to {lama_file()}" in said[0]
    assert not ModelInstall.objects.exists() and not lama_file().exists()
    settings.LAMA_AUTO_INSTALL = False
    settings.HF_ENDPOINT = lama_hub.url
    assert installs.lama_auto_install(say=said.append) is None and len(said) == 1


def test_a_file_that_is_not_the_hubs_is_refused(lama_hub):
    """The hub's SHA-256 of each LFS file is checked: a corrupted or substituted download never
    becomes the engine's file."""
    lama_hub.repos["Carve/LaMa-ONNX"].lfs["lama_fp32.onnx"] = "0" * 64
    said = []
    install = installs.lama_auto_install(say=said.append)
    assert install.status == ModelInstall.Status.FAILED
    assert (
        "is not the file the hub describes" in install.error and "0000000000000000" in install.error
    )
    assert said[-1].startswith("LaMa was not installed (failed)")
    assert not lama_file().exists()


def test_the_studio_says_when_lama_comes_and_staff_where_to_install_it(lama_hub, user, installer):
    """Item 4: while a removal runs on the classical engine, staff who may install are shown
    where LaMa is installed; while it installs, everyone sees how far it is."""
    person, staff = Client(), Client()
    person.force_login(user)
    staff.force_login(installer)
    assert 'id="lama-note"' not in person.get("/").content.decode()
    page = staff.get("/").content.decode()
    assert "Removals run on the classical engine." in page
    assert "/admin/inpainting/modelinstall/" in page
    ModelInstall.objects.create(
        source="lama", name=lama_file().name, kind="lama", status="running",
        bytes_done=50, bytes_total=200,
    )  # fmt: skip
    page = person.get("/").content.decode()
    assert "LaMa, a better remover, is being installed: 25 %." in page


def test_an_install_whose_process_was_killed_is_resumed_at_the_next_start(lama_hub):
    """A start killed mid-install (SIGKILL: no Ctrl-C to record it) left its row running; the
    next start, finding no progress written for minutes, marks it and installs again."""
    dead = ModelInstall.objects.create(
        source="lama", name=lama_file().name, kind="lama", status="running", starter="lama"
    )
    ModelInstall.objects.filter(pk=dead.pk).update(
        updated=timezone.now() - timedelta(seconds=installs.STALE_INSTALL_SECONDS + 1)
    )
    install = installs.lama_auto_install(say=lambda line: None)
    assert install.pk != dead.pk and install.status == ModelInstall.Status.SUCCEEDED
    dead.refresh_from_db()
    assert dead.status == ModelInstall.Status.FAILED and lama_file().is_file()
