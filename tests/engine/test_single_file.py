"""Single-file checkpoints (the AUTOMATIC1111 / Civitai layout) of SD 1.5 and SDXL: made from
the tiny random pipelines, probed, and loaded with the pipeline configuration for their
family, with the network forbidden; they give the images their diffusers folders give."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from inpainting.engine import EngineConfig, EngineError, InpaintRequest, get_backend, run_inpaint
from inpainting.engine import probe as probe_module
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.probe import Probe, probe
from inpainting.testing.original_layout import write_single_file
from inpainting.testing.tiny_model import tiny_config, write_tiny_sdxl_inpaint_model
from tests.images import box_mask, gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model):
    """Each family as a diffusers folder and as a single file; the configuration folders."""
    root = tmp_path_factory.mktemp("single")
    folders = {"sd15": tiny_model, "sdxl": write_tiny_sdxl_inpaint_model(root / "xl")}
    configs = root / "configs"
    singles = {}
    for family, folder in folders.items():
        pipe = load_pipeline(str(folder), "cpu", cache_size=3)
        singles[family] = write_single_file(pipe, root / f"{family}.safetensors")
        # The configuration: everything of the pipeline folder but its weights.
        shutil.copytree(
            folder, configs / f"{family}-inpainting", ignore=shutil.ignore_patterns("*.safetensors")
        )
    return folders, singles, configs


def config(model, configs) -> EngineConfig:
    return tiny_config(model, model_cache_size=4, model_configs=str(configs))


def request() -> InpaintRequest:
    return InpaintRequest(
        image=gradient(120, 80),
        mask=box_mask(120, 80, (40, 20, 80, 60), inpaint_white=False),
        prompt="a red rose",
        num_inference_steps=4,
        seed=3,
    )


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_single_file_loads_offline_and_paints_what_its_folder_paints(files, family, monkeypatch):
    folders, singles, configs = files
    assert probe(singles[family]) == Probe(family, True, "single-file")
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        single = run_inpaint(request(), get_backend("diffusers", config(singles[family], configs)))
    assert attempts == [] and single.metadata["model_load_seconds"] > 0
    pipe = load_pipeline(str(singles[family]), "cpu", cache_size=4, configs=configs)
    folder = load_pipeline(str(folders[family]), "cpu", cache_size=4)
    assert type(pipe) is type(folder)
    for part in ("unet", "vae", "text_encoder"):
        mine, theirs = getattr(pipe, part).state_dict(), getattr(folder, part).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    from_folder = run_inpaint(request(), get_backend("diffusers", config(folders[family], configs)))
    assert np.array_equal(np.asarray(single.images[0]), np.asarray(from_folder.images[0]))


def test_a_single_file_without_any_configuration_says_what_is_missing(files, tmp_path, monkeypatch):
    """Neither MODEL_CONFIGS_DIR nor the shipped configurations have the family (as for a
    family DreamLayer ships none of): the error names the folder to add."""
    _, singles, _ = files
    backend_module.unload_all()
    monkeypatch.setattr(probe_module, "SHIPPED_CONFIGS", tmp_path / "shipped")
    with pytest.raises(EngineError, match="sdxl-inpainting/ in MODEL_CONFIGS_DIR"):
        load_pipeline(str(singles["sdxl"]), "cpu", configs=tmp_path)
