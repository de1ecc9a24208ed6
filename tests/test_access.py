"""Model access by group (issue 82): staff give a group some models; a member sees only
those on every list and is refused the others with a 403 on every surface, in each API's own
shape, naming nothing they may not see. Nobody's access changes until staff set one."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from huggingface_hub import constants as hf_constants

from inpainting.models import GroupAccess, LibraryModel
from inpainting.services.library import library_scan
from inpainting.testing.tiny_lora import write_tiny_lora
from inpainting.testing.tiny_model import write_tiny_inpaint_model
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests.helpers import (
    black_box_mask_png,
    compat_submissions,
    image_png,
    post_img2img,
    run_job,
    studio_client,
    wait_until_served,
)
from tests.images import gradient, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(scope="module")
def files(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    return {
        "beta": write_tiny_inpaint_model(root / "beta", seed=1),
        "ink.safetensors": write_tiny_lora(tiny_model, root / "ink", layout="peft"),
    }


@pytest.fixture
def library(tmp_path, models_dir, tiny_model, files, monkeypatch):
    """alpha (the default) and beta, two tiny SD 1.5 models, and the LoRA ink."""
    shutil.copytree(tiny_model, models_dir / "alpha")
    shutil.copytree(files["beta"], models_dir / "beta")
    settings.LORAS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(files["ink.safetensors"], settings.LORAS_DIR / "ink.safetensors")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    assert library_scan().default == "alpha"
    wait_until_served("alpha", "beta")


@pytest.fixture
def students(user, library):
    """alice is a student; students may run beta, and no LoRA."""
    group = Group.objects.create(name="students")
    access = GroupAccess.objects.create(group=group, open_kinds=[])
    access.entries.add(LibraryModel.objects.get(name="beta"))
    user.groups.add(group)
    return access


def names(answer) -> list[str]:
    return [item["name"] for item in answer]


def test_nothing_changes_until_staff_give_a_group_its_access(api, user, library):
    assert names(api.get("/api/models").json()["models"]) == ["alpha", "beta"]
    assert names(api.get("/api/loras").json()["loras"]) == ["ink.safetensors"]
    Group.objects.create(name="no rules").user_set.add(user)
    assert names(api.get("/api/models").json()["models"]) == ["alpha", "beta"]


def test_a_member_sees_only_what_their_group_gives_on_every_list(api, staff_api, user, students):
    models = api.get("/api/models").json()
    assert names(models["models"]) == ["beta"] and models["default"] == "beta"
    assert api.get("/api/loras").json()["loras"] == []
    assert [m["model_name"] for m in api.get("/sdapi/v1/sd-models").json()] == ["beta"]
    assert api.get("/sdapi/v1/loras").json() == []
    assert api.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("beta")
    page = studio_client(user).get("/").content.decode()
    assert 'value="beta"' in page and 'value="alpha"' not in page and "ink.safetensors" not in page
    # Staff see the whole library.
    assert names(staff_api.get("/api/models").json()["models"]) == ["alpha", "beta"]
    # A second group with the LoRAs open adds them (the union of the user's groups).
    painters = Group.objects.create(name="painters")
    GroupAccess.objects.create(group=painters, open_kinds=["lora"])
    user.groups.add(painters)
    assert names(api.get("/api/loras").json()["loras"]) == ["ink.safetensors"]
    assert names(api.get("/api/models").json()["models"]) == ["beta"]


def test_a_model_not_given_is_a_403_on_each_surface_naming_only_what_the_user_may_run(
    api, api_key, students
):
    def said_only_beta(text: str) -> None:
        assert "not one you may run here (the models you may run: beta;" in text, text
        assert "ink" not in text

    native = post_img2img(api, image_png(), black_box_mask_png(), prompt="x", model="alpha")
    assert native.status_code == 403
    said_only_beta(native.json()["message"])
    lora = post_img2img(
        api,
        image_png(),
        black_box_mask_png(),
        prompt="x",
        engine="diffusers",
        loras='[{"name": "ink", "weight": 1}]',
    )
    assert lora.status_code == 403 and lora.json()["errors"]["loras"]
    assert "The LoRA ink.safetensors is not one you may use here (yours: none" in str(lora.json())
    modelslab, fooocus = compat_submissions(api_key)
    refused = modelslab("alpha")
    assert (refused.status_code, refused.json()["status"]) == (403, "error")
    said_only_beta(refused.json()["message"])
    refused = fooocus("alpha.safetensors")
    assert refused.status_code == 403
    said_only_beta(str(refused.json()))
    a1111 = api.post(
        "/sdapi/v1/img2img",
        {
            "init_images": [base64.b64encode(image_png()).decode()],
            "mask": base64.b64encode(black_box_mask_png()).decode(),
            "prompt": "x",
            "override_settings": {"sd_model_checkpoint": "alpha"},
        },
        format="json",
    )
    assert a1111.status_code == 403
    said_only_beta(a1111.json()["detail"])
    options = api.post("/sdapi/v1/options", {"sd_model_checkpoint": "alpha"}, format="json")
    assert options.status_code == 403
    said_only_beta(options.json()["detail"])
    openai = api.post(
        "/v1/images/edits",
        {"image": image_file(), "prompt": "x", "model": "alpha"},
        format="multipart",
    )
    assert openai.status_code == 403
    said_only_beta(openai.json()["error"]["message"])
    # An unknown name lists only what the user may run, too.
    unknown = post_img2img(api, image_png(), black_box_mask_png(), prompt="x", model="zeta")
    assert unknown.status_code == 400
    assert "(the models: beta;" in unknown.json()["message"]


def image_file():
    return SimpleUploadedFile("in.png", image_png(), content_type="image/png")


def test_a_job_naming_no_model_runs_the_users_own_and_the_cli_runs_as_a_user(
    api, students, tmp_path
):
    generation = run_job(api, steps=2)
    assert generation.model_name == "beta"
    # Given no model at all, a job naming none is refused without naming the default.
    students.entries.clear()
    refused = post_img2img(api, image_png(), black_box_mask_png(), prompt="x", engine="diffusers")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "No diffusion model here is one you may run; ask the server's staff for access."
    )
    students.entries.add(LibraryModel.objects.get(name="beta"))
    (tmp_path / "in.png").write_bytes(image_png())
    (tmp_path / "mask.png").write_bytes(black_box_mask_png())
    arguments = ["--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png")]
    arguments += ["--out", str(tmp_path / "out.png"), "--prompt", "x", "--engine", "diffusers"]
    with pytest.raises(CommandError, match="'alpha' is not one you may run here"):
        call_command("inpaint", *arguments, "--model", "alpha", "--user", "alice")
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("inpaint", *arguments, "--user", "nobody")


def test_a_group_access_names_only_kinds_staff_give(students):
    students.open_kinds = ["mask"]
    with pytest.raises(ValidationError, match="Unknown kind 'mask'"):
        students.full_clean()
    assert json.dumps(students.open_kinds)


def test_an_upscaler_not_given_is_hidden_and_a_403(api, user, models_dir):
    """Upscalers are given like models: listed only where given, refused (403, naming no
    other) on the native upscale and A1111's extras, which queue the same job."""
    write_tiny_real_esrgan(Path(settings.UPSCALERS_DIR) / "tiny-esrgan.safetensors")
    library_scan()
    assert "tiny-esrgan.safetensors" in names(api.get("/api/upscalers").json()["upscalers"])
    group = Group.objects.create(name="no upscalers")
    GroupAccess.objects.create(group=group, open_kinds=["checkpoint", "lora"])
    user.groups.add(group)
    assert [u["name"] for u in api.get("/api/upscalers").json()["upscalers"]] == [
        "lanczos",
        "nearest",
    ]
    picture = png_bytes(gradient(64, 48))
    refused = api.post(
        "/api/upscale",
        {
            "image": SimpleUploadedFile("in.png", picture, content_type="image/png"),
            "upscaler": "tiny-esrgan",
            "factor": 2,
        },
        format="multipart",
    )
    assert refused.status_code == 403, refused.content
    assert "is not one you may use here" in refused.json()["message"]
    extras = api.post(
        "/sdapi/v1/extra-single-image",
        {"image": base64.b64encode(picture).decode(), "upscaler_1": "tiny-esrgan"},
        format="json",
    )
    assert extras.status_code == 403, extras.content
