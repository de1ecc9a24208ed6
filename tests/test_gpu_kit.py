"""The GPU kit (``bench/gpu_kit.py``) runs every part at the tiny size here, so it cannot rot
before the minutes a GPU is lent: each family against stock, batching, the profile, the
stack and the memory plans, within its time budget (not the compiled path: its first CPU
compile alone takes a minute or more here); its published configurations build at full size
on the meta device with the published parameter counts."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline
from PIL import Image

from bench.gpu_kit import (
    BATCHES,
    RUNS,
    STACK_USERS,
    Budget,
    Results,
    build_pipeline,
    markdown,
    model_folder,
    parameters,
    picture_distance,
    stock_layout,
)
from dreamlayer_site.stack import process_env
from inpainting.engine.backends.loading import family_of_model, speed_up
from inpainting.engine.families import FAMILIES
from tests.live import run_script

#: Published parameter counts (billions) of the parts the kit builds, to 0.5 %.
PUBLISHED_BILLIONS = {
    ("sd15", "unet"): 0.860,
    ("sdxl", "unet"): 2.567,
    ("sdxl", "text_encoder_2"): 0.695,  # OpenCLIP ViT-bigG's text tower
    ("flux", "transformer"): 11.90,
    ("flux", "text_encoder_2"): 4.762,  # T5 v1.1 XXL's encoder
    ("flux-kontext", "transformer"): 11.90,
    ("flux2-klein", "text_encoder"): 4.022,  # Qwen3-4B
    ("qwen-edit", "transformer"): 20.43,  # Qwen-Image
    ("qwen-edit", "text_encoder"): 8.292,  # Qwen2.5-VL 7B
    ("fibo2", "transformer"): 8.127,  # FIBO 2.0's, with its perceiver
    ("fibo2", "text_encoder"): 4.438,  # Qwen3-VL 4B
    ("qwen-image-21", "transformer"): 7.115,
    ("qwen-image-21", "text_encoder"): 8.767,  # Qwen3-VL 8B
    ("flux3-klein", "transformer"): 5.549,  # FLUX.3 [klein]'s flow map
    ("flux3-klein", "text_encoder"): 4.438,  # Qwen3-VL 4B
}


@pytest.mark.parametrize("name", list(RUNS))
def test_the_published_configurations_build_with_their_parameter_counts(name, tmp_path):
    folder = model_folder(name, True, tmp_path)
    # Configuration only: one empty weights file, by which the folder is the family's.
    assert [f.stat().st_size < 100 for f in folder.rglob("*.safetensors")] == [True]
    assert family_of_model(str(folder)).name == name
    dtype = getattr(torch, FAMILIES[name].cuda_dtype)
    counts = parameters(build_pipeline(folder, name, "meta", dtype))
    for (family, part), billions in PUBLISHED_BILLIONS.items():
        if family == name:
            assert counts[part] / 1e9 == pytest.approx(billions, rel=0.005), (part, counts)


def kit(out, *args: str, timeout: float = 600) -> tuple[dict, str]:
    """``bench/gpu_kit.py`` run into ``out``: its JSON and its table (exit code 0)."""
    result = run_script("bench/gpu_kit.py", "--out", str(out), *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "gpu-kit.json").read_text()), (out / "gpu-kit.md").read_text()


#: The memory plans the planner offers besides ``gpu``: a UNet has no fp8 storage.
OTHER_PLANS = {
    "sd15": ["text-encoder-offload", "model-offload", "sequential"],
    "flux": [
        "fp8",
        "text-encoder-offload",
        "fp8-text-encoder-offload",
        "model-offload",
        "sequential",
    ],
}


# Every part in one run of the kit (each run imports torch and diffusers and builds every
# family's tiny pipelines again): about a minute at the tiny size on 2 busy cores
# (Qwen-Image-Edit's video VAE most of it), 2 to 3 on a slow day, more than the suite's
# 5-minute limit leaves room for.
@pytest.mark.timeout(600)
@pytest.mark.stack
def test_the_kit_runs_every_part_at_the_tiny_size_and_writes_its_table(tmp_path):
    parts = "families,batching,profile,stack,plans"
    args = ("--runs", "1", "--parts", parts, "--plan-families", ",".join(OTHER_PLANS))
    report, table = kit(tmp_path / "kit", *args)
    assert report["device"] == "cpu" and report["size"] == "tiny" and not report["skipped"]
    assert report["budget_s"] == 420 and report["over_budget"] == []
    assert 0 < report["elapsed_s"] < 420 and "(budget: 420 s)" in table
    assert [row["family"] for row in report["families"]] == list(RUNS)
    for row in report["families"]:
        assert row["stock_s"] > 0 and row["dreamlayer_s"] > 0, row
        assert row["speed_up"] == pytest.approx(row["stock_s"] / row["dreamlayer_s"])
        # The worker's path asked for the all-on-GPU plan, which the CPU runs as ``cpu``.
        assert f"| {row['label']} | 64 | 2 | float32 | cpu |" in table
        # Graphs are CUDA's: the row says why the graphed backend ran eager; the fast tier
        # ran where the family has one, its picture near the exact one.
        assert row["graphs_said"] == "eager: no CUDA device: graphs are captured on CUDA only"
        assert ("fast_s" in row) == FAMILIES[row["family"]].capabilities.fast_tier, row
        assert row.get("fast_psnr_db") is None or row["fast_psnr_db"] > 10, row
    assert [(r["family"], r["jobs"], r["plan"]) for r in report["batching"]] == [
        (family, jobs, "cpu") for family in ("sd15", "sdxl") for jobs in BATCHES
    ]
    assert all(r["images_per_s"] > 0 for r in report["batching"])
    assert [(r["family"], r["plan"]) for r in report["profile"]] == [(f, "cpu") for f in RUNS]
    assert all(r["operators_per_step"] > 100 for r in report["profile"])
    assert [(r["family"], r["plan"]) for r in report["stack"]] == [("sd15", "cpu"), ("sdxl", "cpu")]
    for row in report["stack"]:
        # Through the stack a job takes longer than its inference in the worker; every one
        # of the users at once got an answer.
        assert row["one_job_s"] > row["worker_inference_s"] > 0, row
        assert row["users"] == STACK_USERS and row["slowest_user_s"] <= row["all_users_s"]
    assert [r["family"] for r in report["families"] if "fast_s" in r] == ["flux", "flux-kontext"]
    headings = ("## Families", "## CUDA graphs", "## Batching", "## One denoising", "## A whole")
    for heading in (*headings, "## Memory plans"):
        assert heading in table
    # The plans of the families --plan-families names, each timed against the family's
    # all-on-the-GPU run of the families part.
    gpu = {row["family"]: row for row in report["families"]}
    assert [(r["family"], r["asked"]) for r in report["plans"]] == [
        (family, plan) for family, plans in OTHER_PLANS.items() for plan in plans
    ]
    for row in report["plans"]:
        # The CPU stores FLUX's transformer in fp8 where asked; every other plan runs as cpu.
        assert row["plan"] == ("fp8" if row["asked"] == "fp8" else "cpu"), row
        assert row["seconds"] > 0
        assert row["against_gpu"] == pytest.approx(
            row["seconds"] / gpu[row["family"]]["dreamlayer_s"]
        )
    assert "| flux | fp8 | fp8 |" in table and "| sd15 | sequential | cpu |" in table


# In the parallel part: what it checks is a deadline kept (SIGALRM cuts the families part at
# 5 s, at most one tiny step late, and nothing after it starts), not a speed, so another
# test's load moves none of it (it ran alone in the serial part, 12.6 s of its wall time).
def test_what_the_time_budget_leaves_out_is_said_and_the_run_ends_at_it(tmp_path):
    # 900 steps a picture: the families part alone would take half a minute and more.
    args = ["--families", "sd15", "--parts", "families,stack,plans", "--steps", "900"]
    report, table = kit(tmp_path / "kit", *args, "--runs", "1", "--budget-seconds", "5")
    assert not report["skipped"] and report["budget_s"] == 5
    cut = "sd15: families: cut at the deadline"
    assert report["over_budget"] == [
        cut,
        "stack: not started (0 s left)",
        "sd15: plans: not started (0 s left)",
    ]
    assert report["elapsed_s"] < 15 and report["stack"] == report["plans"] == []
    assert "Not run within the time budget (5 s): " + cut in table


def test_a_step_with_no_time_left_is_said_not_started_and_a_cut_names_its_own_step():
    """``Budget.cut``: a block entered after the deadline arms no alarm, so its part says it
    did not start and nothing is "cut" in its name or an earlier step's (a millisecond's alarm
    once went off after such a part and named the step cut before it a second time); a block
    cut before any part in it started is named by its step."""
    budget = Budget(0.2)
    with budget.cut("sd15"):
        assert budget.start("sd15: families")
        time.sleep(5)  # cut at 0.2 s
    with budget.cut("sd15 plans"):
        assert not budget.start("sd15: plans")
        time.sleep(0.05)  # no alarm is armed: nothing cuts it
    assert budget.missed == [
        "sd15: families: cut at the deadline",
        "sd15: plans: not started (0 s left)",
    ]
    budget = Budget(0.2)
    with budget.cut("stack"):
        time.sleep(5)  # cut before it started any part
    assert budget.missed == ["stack: cut at the deadline"]


def test_the_stack_runs_the_scripts_of_wheels_installed_into_a_folder(tmp_path):
    """``pip install --target DIR`` (the GPU machine: ``docs/performance.md``) puts console
    scripts in ``DIR/bin``, on no ``PATH``; with ``DIR`` on ``PYTHONPATH`` the Procfile's
    processes, started by a shell, find them there (its ``celery`` lines)."""
    site = tmp_path / "site"
    (site / "bin").mkdir(parents=True)
    celery = site / "bin" / "celery"
    celery.write_text('#!/bin/sh\necho "the carried celery $*"\n')
    celery.chmod(0o755)
    env = process_env({"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(["", str(site)])})
    ran = subprocess.run(
        ["/bin/sh", "-c", "celery --app dreamlayer_site"], env=env, capture_output=True, text=True
    )
    assert ran.stdout == "the carried celery --app dreamlayer_site\n", ran.stderr
    # ``make run`` (no PYTHONPATH): the interpreter's folder first, as before.
    plain = process_env({"PATH": "/usr/bin:/bin"})["PATH"].split(os.pathsep)
    assert plain == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]


def test_the_compiled_rows_report_the_first_calls_and_how_far_the_picture_moved():
    """The compiled part (GPU only: its CPU compile costs a minute or more) reports each side's
    first call, the worker's compile at its start, and its picture against the eager one:
    the largest difference and the share of values more than one level apart."""
    eager = Image.new("RGB", (10, 10), (100, 100, 100))
    compiled = eager.copy()
    compiled.putpixel((0, 0), (101, 100, 100))  # one level: within rounding
    compiled.putpixel((1, 0), (100, 107, 100))  # seven levels
    distance = picture_distance(compiled, eager)
    assert distance == {"max_level": 7, "share_over_1": pytest.approx(1 / 300)}

    row = {"family": "sd15", "label": "Stable Diffusion 1.5", "size": 512, "steps": 50,
           "dtype": "float16", "parameters": 1_066_000_000, "stock_s": 1.5, "stock_first_s": 7.7,
           "stock_compiled_first_s": 63.8, "dreamlayer_s": 1.6, "dreamlayer_first_s": 2.4,
           "dreamlayer_compile_start_s": 58.0, "dreamlayer_compiled_first_s": 1.1,
           "compiled_against_eager": distance}  # fmt: skip
    results = Results(device="cuda", gpu="H100", size="published", started="now", command="x")
    results.families.append(row)
    table = markdown(results)
    assert "| Stable Diffusion 1.5 | 7.700 | 63.800 | 2.400 | 58.000 | 1.100 | 7 | 0.33% |" in table


def test_after_the_compiled_side_the_next_parts_get_the_eager_defaults_layout(tiny_model):
    """On CUDA the compiled side gets channels-last and fused QKV (``loading.fast_path``); the
    parts after it (batching, the profile) time the eager default, which has neither."""
    pipe = StableDiffusionInpaintPipeline.from_pretrained(tiny_model)
    speed_up(pipe, denoiser="unet", channels_last=True, fuse_qkv=True, compile_unet=False)
    assert {type(p).__name__ for p in pipe.unet.attn_processors.values()} == {
        "FusedAttnProcessor2_0"
    }
    stock_layout(pipe, "unet")
    assert pipe.unet.conv_in.weight.is_contiguous()
    assert pipe.vae.encoder.conv_in.weight.is_contiguous()
    assert "FusedAttnProcessor2_0" not in {
        type(p).__name__ for p in pipe.unet.attn_processors.values()
    }
    stock_layout(pipe, "unet")  # a pipeline never fused: nothing to undo, no error
