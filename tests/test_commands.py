"""manage.py inpaint, upscale, engine_info, download_model."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan
from tests.helpers import H, W, black_box_mask_png, image_png
from tests.images import decode


@pytest.fixture
def files(tmp_path):
    (tmp_path / "in.png").write_bytes(image_png())
    (tmp_path / "mask.png").write_bytes(black_box_mask_png())
    return tmp_path


def test_inpaint_command_classical(files, capsys):
    call_command(
        "inpaint",
        "--image",
        str(files / "in.png"),
        "--mask",
        str(files / "mask.png"),
        "--out",
        str(files / "out.png"),
        "--seed",
        "5",
    )
    out = decode((files / "out.png").read_bytes())
    mask = effective_mask(Image.open(files / "mask.png"), (W, H), MaskOptions())
    original = decode(image_png())
    assert out.shape == original.shape
    assert (out[mask == 0] == original[mask == 0]).all()
    assert "seed 5" in capsys.readouterr().out


@pytest.mark.django_db  # a diffusers job looks its model up in the library
def test_inpaint_command_diffusers_samples_and_progress(files, tiny_model, capsys):
    call_command(
        "inpaint",
        "--image",
        str(files / "in.png"),
        "--mask",
        str(files / "mask.png"),
        "--out",
        str(files / "out.png"),
        "--engine",
        "diffusers",
        "--prompt",
        "a rose",
        "--steps",
        "4",
        "--denoising-strength",
        "1",
        "--samples",
        "2",
        "--seed",
        "9",
        "--scheduler",
        "euler a",
    )
    captured = capsys.readouterr()
    assert "4/4" in captured.err  # the progress bar
    first, second = Image.open(files / "out.png"), Image.open(files / "out-1.png")
    assert json.loads(first.text["dreamlayer"])["seed"] == 9
    assert json.loads(second.text["dreamlayer"])["seed"] == 10
    assert json.loads(first.text["dreamlayer"])["scheduler"] == "Euler a"
    assert (np.asarray(first) != np.asarray(second)).any()


def test_inpaint_command_outpaint_without_a_mask(files):
    call_command(
        "inpaint",
        "--image",
        str(files / "in.png"),
        "--out",
        str(files / "out.png"),
        "--outpaint",
        '{"right": 16}',
    )
    assert Image.open(files / "out.png").size == (W + 16, H)


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--steps", "0"], "num_inference_steps"),
        (["--mask", "missing.png"], "Cannot read"),
        (["--scheduler", "warp"], "Unknown scheduler"),
    ],
)
def test_inpaint_command_errors(files, extra, words):
    args = ["--image", str(files / "in.png"), "--out", str(files / "o.png")]
    if "--mask" not in extra:
        args += ["--mask", str(files / "mask.png")]
    with pytest.raises(CommandError, match=words):
        call_command("inpaint", *args, *extra)


def test_engine_info_reports_and_loads(tiny_model, capsys):
    call_command("engine_info", "--json", "--load")
    info = json.loads(capsys.readouterr().out)
    assert info["engine"] == "classical" and info["engines"] == ["classical", "diffusers"]
    assert info["device"] == "cpu" and "DPM++ 2M Karras" in info["schedulers"]
    assert info["model_load"] == "ok"
    flux = info["families"]["flux"]
    assert flux["pipeline"] == "FluxFillPipeline" and flux["cuda_dtype"] == "bfloat16"
    assert flux["accepts"]["negative_prompt"] is False
    assert flux["accepts"]["guidance_scale"] == {"default": 30.0, "minimum": 1.0, "maximum": 100.0}
    assert set(info["families"]) == {
        "sd15",
        "sdxl",
        "sd3",
        "flux",
        "zimage",
        "flux-kontext",
        "qwen-edit",
        "qwen-edit-plus",
        "flux2-klein",
        "flux2-klein-base",
        "fibo2",
        "qwen-image-21",
        "flux3-klein",
        "flux3-klein-base",
    }


def test_engine_info_lists_every_familys_capabilities_in_words(capsys):
    call_command("engine_info")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("family ")]
    assert len(lines) == 14
    flux = next(line for line in lines if "FLUX.1 Fill" in line)
    assert "steps 50 (at most 100)" in flux and "guidance 30.0 (1.0-100.0)" in flux
    assert "edits by words" not in flux
    kontext = next(line for line in lines if "FLUX.1 Kontext" in line)
    assert "edits by words, with or without a mask (0 reference pictures)" in kontext
    sd15 = next(line for line in lines if "Stable Diffusion 1.5" in line)
    assert "uses negative_prompt, schedulers, clip_skip" in sd15
    klein = next(line for line in lines if "FLUX.2 [klein]:" in line)
    assert "steps 4 (at most 50)" in klein and "(3 reference pictures)" in klein
    fibo2 = next(line for line in lines if "Bria FIBO 2.0:" in line)
    assert "steps 30 (at most 100)" in fibo2 and "(4 reference pictures)" in fibo2
    qwen21 = next(line for line in lines if "Qwen-Image-2.1:" in line)
    assert "steps 40 (at most 100)" in qwen21 and "(8 reference pictures)" in qwen21
    assert qwen21.endswith("; keeps a transparent background")
    assert sum("transparent" in line for line in lines) == 1
    flux3 = next(line for line in lines if "FLUX.3 [klein]:" in line)
    assert "Flux3DistilledModularPipeline" in flux3 and "steps 16 (at most 50)" in flux3
    assert "(9 reference pictures)" in flux3


def test_engine_info_shows_a_load_error(settings, tmp_path, capsys):
    settings.SD_INPAINT_MODEL = str(tmp_path / "no-model-here")
    call_command("engine_info", "--load")
    out = capsys.readouterr().out
    assert "model_load" in out and "Could not load the diffusion model" in out


def test_download_model_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CommandError, match="needs network"):
        call_command("download_model", "some-org/some-inpainting-model")


@pytest.mark.django_db
def test_upscale_command_with_a_model_file_and_with_lanczos(files, tmp_path, capsys):
    model = write_tiny_real_esrgan(tmp_path / "tiny-RealESRGAN_x4plus.safetensors")
    call_command(
        "upscale",
        "--image",
        str(files / "in.png"),
        "--out",
        str(files / "big.png"),
        "--width",
        str(W * 3),
        "--upscaler",
        str(model),
    )
    with Image.open(files / "big.png") as big:
        assert big.size == (W * 3, H * 3)
        parameters = json.loads(big.text["dreamlayer"])
    assert (parameters["architecture"], parameters["scale"]) == ("ESRGAN", 4)
    assert f"({W * 3}x{H * 3}, tiny-RealESRGAN_x4plus.safetensors)" in capsys.readouterr().out
    call_command(
        "upscale", "--image", str(files / "in.png"), "--out", str(files / "x2.png"),
        "--upscaler", "Lanczos",
    )  # fmt: skip
    want = Image.open(files / "in.png").convert("RGB").resize((W * 2, H * 2), Image.LANCZOS)
    assert np.array_equal(decode((files / "x2.png").read_bytes()), np.asarray(want))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--factor", "5"], "between 1 and 4"),
        (["--factor", "2", "--width", "90"], "not both"),
        (["--upscaler", "RealESRGAN_x4plus.pth"], "No upscaler called"),
    ],
)
def test_upscale_command_errors(files, extra, words):
    with pytest.raises(CommandError, match=words):
        call_command(
            "upscale", "--image", str(files / "in.png"), "--out", str(files / "o.png"), *extra
        )
