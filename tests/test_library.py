"""The model library: the scan of MODELS_DIR and the Hugging Face cache, the admin's enable /
disable / default, ``GET /api/models`` and ``manage.py models``."""

from __future__ import annotations

import hashlib
import shutil
from io import StringIO
from types import SimpleNamespace

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from huggingface_hub import constants as hf_constants
from safetensors.numpy import save_file

from inpainting.engine import probe as probe_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.memory import CHOICES as MEMORY_PLANS
from inpainting.errors import ClientError
from inpainting.models import LibraryModel, ModelInstall
from inpainting.params import GenerationParams
from inpainting.services.library import library_model_for_job, library_scan
from inpainting.services.plan import job_plan

pytestmark = pytest.mark.django_db
UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
SDXL_TEXT_2 = "conditioner.embedders.1.model.positional_embedding"
SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"


def checkpoint(path, tensors):
    save_file({k: np.zeros(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


@pytest.fixture
def library(tmp_path, settings, tiny_model, monkeypatch):
    """A models folder as a user fills it: a diffusers folder, single-file checkpoints, a pickle,
    a FLUX file, LaMa's ONNX file and a loras/ folder; an empty Hugging Face cache."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_model, root / "tiny-sd15-inpainting")
    shutil.copytree(tiny_model, root / "tiny-copy")
    checkpoint(root / "juggernaut-xl.safetensors", {UNET_IN: (320, 4, 3, 3), SDXL_TEXT_2: (77, 8)})
    checkpoint(root / "dreamshaper-8.safetensors", {UNET_IN: (320, 4, 3, 3), SD1_TEXT: (77, 8)})
    (root / "old-model.ckpt").write_bytes(b"\x80\x04pickle")
    checkpoint(
        root / "flux-fill.safetensors", {"double_blocks.0.img_attn.norm.key_norm.scale": (4,)}
    )
    (root / "big-lama.onnx").write_bytes(b"onnx")
    (root / "loras").mkdir()
    checkpoint(root / "loras" / "style.safetensors", {"lora_unet_x.lora_down.weight": (4, 4)})
    settings.MODELS_DIR = root
    settings.SD_INPAINT_MODEL = "/elsewhere/tiny-sd15-inpainting"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return root


def test_the_scan_records_each_model_with_its_family_and_refuses_the_rest(library):
    report = library_scan()
    assert sorted(report.added) == [
        "dreamshaper-8.safetensors",
        "juggernaut-xl.safetensors",
        "tiny-copy",
        "tiny-sd15-inpainting",
    ]
    refused = dict(report.refused)
    assert set(refused) == {"old-model.ckpt", "flux-fill.safetensors"}
    assert "pickle" in refused["old-model.ckpt"] and "FLUX" in refused["flux-fill.safetensors"]
    rows = {m.name: m for m in LibraryModel.objects.all()}
    xl = rows["juggernaut-xl.safetensors"]
    assert (xl.family, xl.inpainting, xl.layout) == ("sdxl", False, "single-file")
    data = (library / "juggernaut-xl.safetensors").read_bytes()
    assert xl.sha256 == hashlib.sha256(data).hexdigest() and xl.size_bytes == len(data)
    tiny = rows["tiny-sd15-inpainting"]
    assert (tiny.family, tiny.inpainting, tiny.layout) == ("sd15", True, "diffusers")
    # The default: SD_INPAINT_MODEL is the tiny model's folder (another path, same name).
    assert report.default == "tiny-sd15-inpainting" and tiny.is_default

    again = library_scan()
    assert again.added == [] and sorted(again.unchanged) == sorted(report.added)
    (library / "dreamshaper-8.safetensors").unlink()
    third = library_scan()
    assert third.missing == ["dreamshaper-8.safetensors"]
    assert not LibraryModel.objects.get(name="dreamshaper-8.safetensors").present


def test_the_hugging_face_cache_counts_too(library, tmp_path, tiny_model):
    snapshot = tmp_path / "hf-cache" / "models--acme--inpaint-xl" / "snapshots" / "abc123"
    shutil.copytree(tiny_model, snapshot)
    library_scan()
    row = LibraryModel.objects.get(name="acme/inpaint-xl")
    assert (row.family, row.inpainting, row.layout) == ("sd15", True, "hf-cache")
    assert row.path == str(snapshot)


def test_api_models_lists_the_enabled_models_default_first(library, api):
    library_scan()
    LibraryModel.objects.filter(name="dreamshaper-8.safetensors").update(enabled=False)
    body = api.get("/api/models").json()
    assert body["default"] == "tiny-sd15-inpainting"
    assert [m["name"] for m in body["models"]] == [
        "tiny-sd15-inpainting",
        "tiny-copy",
        "juggernaut-xl.safetensors",
    ]
    first, _, xl = body["models"]
    assert first["kind"] == "inpainting" and xl["kind"] == "base"
    assert xl["family"] == "sdxl" and xl["defaults"]["working_size"] == 1024
    assert first["defaults"] == {
        "working_size": 512,
        "num_inference_steps": 30,
        "guidance_scale": 7.5,
    }
    assert (
        first["accepts"]["negative_prompt"] is True
        and first["family_label"] == "Stable Diffusion 1.5"
    )
    assert len(xl["sha256"]) == 64
    assert Client().get("/api/models").status_code == 401


def test_staff_enable_disable_and_choose_the_default_in_the_admin(
    library, staff_user, tmp_path, monkeypatch
):
    """(Without any SDXL configuration, the single-file SDXL checkpoint cannot run here.)"""
    monkeypatch.setattr(probe_module, "SHIPPED_CONFIGS", tmp_path / "none")
    url = "/admin/inpainting/librarymodel/"
    library_scan()
    client = Client()
    client.force_login(staff_user)
    assert "Make the selected model the default" not in client.get(url).content.decode()
    staff_user.user_permissions.add(Permission.objects.get(codename="change_librarymodel"))
    client.force_login(staff_user)
    xl = LibraryModel.objects.get(name="juggernaut-xl.safetensors")
    response = client.post(
        url, {"action": "make_default", "_selected_action": [xl.pk]}, follow=True
    )
    assert "is a single-file sdxl checkpoint, and the pipeline configuration" in (
        response.content.decode()
    )
    copy = LibraryModel.objects.get(name="tiny-copy")
    response = client.post(url, {"action": "make_default", "_selected_action": [copy.pk]})
    assert response.status_code == 302
    assert list(LibraryModel.objects.filter(is_default=True)) == [copy]
    response = client.post(
        url, {"action": "disable_selected", "_selected_action": [copy.pk]}, follow=True
    )
    assert "cannot be disabled" in response.content.decode()
    assert LibraryModel.objects.get(pk=copy.pk).enabled
    client.post(url, {"action": "disable_selected", "_selected_action": [xl.pk]})
    assert not LibraryModel.objects.get(pk=xl.pk).enabled
    assert "juggernaut-xl.safetensors" in client.get(url).content.decode()
    # A rescan keeps what staff chose.
    assert library_scan().default == "tiny-copy"
    assert not LibraryModel.objects.get(pk=xl.pk).enabled


def test_staff_choose_a_memory_plan_from_the_engines_list_in_the_admin(library, staff_user):
    """The memory plan is checked by the code, not frozen into the field's choices: the
    change page offers the engine's plans (``engine.memory.CHOICES``), saves one, and an
    unknown one is refused with the list."""
    library_scan()
    staff_user.user_permissions.add(Permission.objects.get(codename="change_librarymodel"))
    client = Client()
    client.force_login(staff_user)
    copy = LibraryModel.objects.get(name="tiny-copy")
    url = f"/admin/inpainting/librarymodel/{copy.pk}/change/"
    page = client.get(url).content.decode()
    for plan in MEMORY_PLANS:
        assert f'<option value="{plan}">{plan}</option>' in page
    assert client.post(url, {"enabled": "on", "memory_plan": "fp8"}).status_code == 302
    assert LibraryModel.objects.get(pk=copy.pk).memory_plan == "fp8"
    response = client.post(url, {"enabled": "on", "memory_plan": "in-the-cloud"})
    assert response.status_code == 200 and "in-the-cloud" in response.content.decode()
    assert LibraryModel.objects.get(pk=copy.pk).memory_plan == "fp8"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "embedding", "Unknown kind 'embedding'; the kinds: checkpoint, lora"),
        ("layout", "zip", "Unknown layout 'zip'; the layouts: single-file, diffusers"),
        ("memory_plan", "cloud", "Unknown memory plan 'cloud'; the memory plans: auto, gpu"),
    ],
)
def test_a_library_models_names_are_checked_by_the_code(field, value, message):
    model = LibraryModel(
        kind=LibraryModel.Kind.CHECKPOINT,
        name="a",
        path="/models/a",
        family="sd15",
        layout=LibraryModel.Layout.DIFFUSERS,
        size_bytes=1,
        sha256="0" * 64,
        modified=0.0,
    )
    model.full_clean()
    setattr(model, field, value)
    with pytest.raises(ValidationError, match=message.replace("'", ".")):
        model.full_clean()


def test_an_installs_kind_is_checked_by_the_code():
    install = ModelInstall(source="org/repo", kind="lama", name="lama")
    install.full_clean(exclude=["requested_by"])
    install.kind = "embedding"
    with pytest.raises(ValidationError, match="Unknown install kind 'embedding'"):
        install.full_clean(exclude=["requested_by"])


def test_manage_py_models_scan_and_list(library):
    out = StringIO()
    call_command("models", "scan", stdout=out)
    text = out.getvalue()
    assert "added: juggernaut-xl.safetensors" in text
    assert "refused: old-model.ckpt:" in text and "default: tiny-sd15-inpainting" in text
    out = StringIO()
    call_command("models", "list", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("tiny-sd15-inpainting (default): sd15, inpainting, diffusers")
    assert any(
        line.startswith("juggernaut-xl.safetensors: sdxl, base, single-file") for line in lines
    )


def test_a_single_file_runs_with_the_shipped_configuration_of_its_family(api, library):
    """No MODEL_CONFIGS_DIR folder for SDXL here: the configuration shipped with DreamLayer
    makes the single-file SDXL checkpoint runnable."""
    library_scan()
    assert library_model_for_job("juggernaut-xl.safetensors").name == "juggernaut-xl.safetensors"
    listed = {m["name"]: m for m in api.get("/api/models").json()["models"]}
    assert listed["juggernaut-xl.safetensors"]["runnable"] is True


def test_a_single_file_without_any_configuration_cannot_run(library, tmp_path, monkeypatch):
    """A family with neither a MODEL_CONFIGS_DIR folder nor a shipped one (as a family
    DreamLayer ships none of) cannot run, and the error names the folder to add."""
    monkeypatch.setattr(probe_module, "SHIPPED_CONFIGS", tmp_path / "shipped")
    library_scan()
    with pytest.raises(ClientError, match=r"\(sdxl/ in MODEL_CONFIGS_DIR\) is not on this"):
        job_plan(GenerationParams(prompt="a cat", model="juggernaut-xl.safetensors"))
    with pytest.raises(ClientError, match=r"No model named 'nope' is installed here \(the"):
        library_model_for_job("nope")
    assert library_model_for_job(None).name == "tiny-sd15-inpainting"


def raw_safetensors(path, header: bytes) -> None:
    path.write_bytes(len(header).to_bytes(8, "little") + header)


def test_hostile_files_are_refused_and_the_scan_goes_on(library):
    """A header nested 100,000 deep, a LoRA tensor of ``shape: []``, a nested config.json and
    an oversized header once ended ``manage.py models scan`` with a traceback (later files
    unrecorded, nothing marked missing); now each is refused with its reason."""
    raw_safetensors(library / "aa-deep.safetensors", b"[" * 100_000 + b"]" * 100_000)
    raw_safetensors(
        library / "loras" / "aa-empty-shape.safetensors",
        b'{"lora_unet_x_attn2_to_k.lora_down.weight": '
        b'{"dtype": "F16", "shape": [], "data_offsets": [0, 0]}}',
    )
    nested = library / "aa-nested-folder"
    (nested / "unet").mkdir(parents=True)
    (nested / "model_index.json").write_text('{"_class_name": "StableDiffusionInpaintPipeline"}')
    (nested / "unet" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    huge = library / "aa-huge.safetensors"
    huge.write_bytes((probe_module.MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b"{}")
    out = StringIO()
    call_command("models", "scan", stdout=out)
    text = out.getvalue()
    for name in ("aa-deep.safetensors", "aa-nested-folder", "aa-huge.safetensors"):
        assert f"refused: {name}:" in text, text
    with pytest.raises(probe_module.Unsupported, match="could not be detected"):
        probe_module.probe_lora(library / "loras" / "aa-empty-shape.safetensors")
    # The files after them were recorded all the same.
    assert "added: juggernaut-xl.safetensors" in text and "added: tiny-sd15-inpainting" in text


def test_a_new_family_with_a_long_name_needs_no_migration_and_fits_the_column(monkeypatch):
    """A family is known by the code, not by the field's choices: one added with a
    24-character name needs no migration (``makemigrations --check`` finds none), passes the
    field's validation and is stored and read back (on PostgreSQL a name longer than the
    column is an error, on SQLite never); a name the code does not know is refused."""
    name = "flux3-klein-base-preview"
    assert len(name) == 24
    monkeypatch.setitem(FAMILIES, name, SimpleNamespace(name=name, label="FLUX 3 [klein] base"))
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit(1) if not
    model = LibraryModel(
        kind=LibraryModel.Kind.CHECKPOINT,
        name="klein-preview",
        path="/models/klein-preview",
        family=name,
        layout=LibraryModel.Layout.DIFFUSERS,
        size_bytes=1,
        sha256="0" * 64,
        modified=0.0,
    )
    model.full_clean()
    model.save()
    stored = LibraryModel.objects.get(name="klein-preview")
    assert stored.family == name and stored.family_label == "FLUX 3 [klein] base"
    stored.family = "no-such-family"
    with pytest.raises(ValidationError, match="Unknown family 'no-such-family'"):
        stored.full_clean()
