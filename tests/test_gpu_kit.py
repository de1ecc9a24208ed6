"""The GPU kit (``bench/gpu_kit.py``) runs every part at the tiny size here, so it cannot rot
before the minutes a GPU is lent; its published configurations build at full size on the meta
device with the published parameter counts."""

import json

import pytest
import torch

from bench.gpu_kit import BATCHES, RUNS, STACK_USERS, build_pipeline, model_folder, parameters
from inpainting.engine.backends.loading import family_of_model
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


@pytest.mark.stack
def test_the_kit_runs_every_part_at_the_tiny_size_and_writes_its_table(tmp_path):
    out = tmp_path / "kit"
    result = run_script("bench/gpu_kit.py", "--runs", "1", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "gpu-kit.json").read_text())
    table = (out / "gpu-kit.md").read_text()
    assert report["device"] == "cpu" and report["size"] == "tiny" and not report["skipped"]
    assert [row["family"] for row in report["families"]] == list(RUNS)
    for row in report["families"]:
        assert row["stock_s"] > 0 and row["dreamlayer_s"] > 0, row
        assert row["speed_up"] == pytest.approx(row["stock_s"] / row["dreamlayer_s"])
        assert f"| {row['label']} | 64 | 2 | float32 |" in table
    assert [(r["family"], r["jobs"]) for r in report["batching"]] == [
        (family, jobs) for family in ("sd15", "sdxl") for jobs in BATCHES
    ]
    assert all(r["images_per_s"] > 0 for r in report["batching"])
    assert [r["family"] for r in report["profile"]] == list(RUNS)
    assert all(r["operators_per_step"] > 100 for r in report["profile"])
    assert [r["family"] for r in report["stack"]] == ["sd15", "sdxl"]
    for row in report["stack"]:
        # Through the stack a job takes longer than its inference in the worker; every one
        # of the users at once got an answer.
        assert row["one_job_s"] > row["worker_inference_s"] > 0, row
        assert row["users"] == STACK_USERS and row["slowest_user_s"] <= row["all_users_s"]
    for heading in ("## Families", "## Batching", "## One denoising step", "## A whole job"):
        assert heading in table
