"""Edit by words (issue 36) through the same backend and runner as inpainting, on a tiny random
FLUX.1 Kontext pipeline the tests build offline: detection from its folder, the network
forbidden while loading, a masked edit that keeps every pixel outside the effective mask, a
mask-less edit of the whole picture at the input's size, progress, previews and cancel.
Qwen-Image-Edit's folders are recognised here; its pipelines run in test_qwen_edit.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inpainting.engine import (
    Cancelled,
    InpaintRequest,
    InvalidInput,
    get_backend,
    run_inpaint,
)
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, Unsupported, probe
from inpainting.testing.tiny_flow import write_tiny_flux_kontext_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def kontext(tmp_path_factory):
    return write_tiny_flux_kontext_model(tmp_path_factory.mktemp("kontext") / "kontext")


@pytest.fixture
def backend(kontext):
    return get_backend("diffusers", tiny_config(kontext, preview_every=2))


def edit_request(**overrides) -> InpaintRequest:
    return inpaint_request(**{"prompt": "make the sky red", "guidance_scale": 2.5, **overrides})


def changed(result, image) -> np.ndarray:
    """Per pixel, whether the result differs from the input (any channel)."""
    return (np.asarray(result.images[0]) != np.asarray(image.convert("RGB"))).any(axis=2)


def test_the_folder_is_an_edit_family_and_loads_with_the_network_forbidden(kontext, monkeypatch):
    assert probe(kontext) == Probe("flux-kontext", True, "diffusers")
    assert FAMILIES["flux-kontext"].edits and FAMILIES["qwen-edit-plus"].edits
    assert FAMILIES["qwen-edit-plus"].reference_images == 2
    assert not FAMILIES["sd15"].edits and not FAMILIES["flux"].edits
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        backend = get_backend("diffusers", tiny_config(kontext))
        assert backend.edits and not backend.supports_batch
        result = run_inpaint(edit_request(), backend)
    assert attempts == []
    assert result.metadata["model_load_seconds"] > 0
    assert result.metadata["family"] == "flux-kontext"


def test_a_masked_edit_changes_the_mask_only(backend):
    req = edit_request(samples=2)
    result = run_inpaint(req, backend)
    assert kept_exactly(result, req)
    assert result.metadata["edit"] == "masked"
    assert result.metadata["edit_pipeline"] == "FluxKontextInpaintPipeline"
    assert len(result.images) == 2 and result.seeds == [7, 8]
    inside = np.asarray(req.mask) == 0  # black inpaints here
    assert changed(result, req.image)[inside].mean() > 0.5
    again = run_inpaint(edit_request(seed=8), backend)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(result.images[1]))


def test_an_edit_without_a_mask_changes_the_whole_picture_at_its_size(backend):
    image = gradient(100, 70)  # not a multiple of 16: worked at 64 x 48, brought back
    result = run_inpaint(edit_request(image=image, mask=None), backend)
    assert result.images[0].size == (100, 70)
    assert result.metadata["edit"] == "whole" and result.metadata["inpaint_area"] == "whole"
    assert result.metadata["edit_pipeline"] == "FluxKontextPipeline"
    assert changed(result, image).mean() > 0.9


def test_a_model_that_does_not_edit_still_needs_a_mask(tiny_model):
    backend = get_backend("diffusers", tiny_config(tiny_model))
    with pytest.raises(InvalidInput, match="A mask is required"):
        run_inpaint(edit_request(mask=None), backend)


def test_reference_pictures_beyond_what_the_model_reads_are_refused(backend):
    with pytest.raises(InvalidInput, match="at most 0 reference pictures"):
        run_inpaint(edit_request(reference_images=(gradient(40, 40),)), backend)


def test_progress_previews_and_cancel_within_a_step(backend):
    events = []
    run_inpaint(edit_request(samples=2, mask=None), backend, progress=events.append)
    assert [(e.step, e.total) for e in events] == [(i, 8) for i in range(1, 9)]
    assert any(e.preview for e in events)
    stop = []
    with pytest.raises(Cancelled):
        run_inpaint(
            edit_request(num_inference_steps=20),
            backend,
            progress=lambda e: stop.append(e.step),
            is_cancelled=lambda: len(stop) >= 2,
        )
    assert len(stop) == 2


def test_qwen_image_edit_folders_are_recognised_and_single_files_refused(tmp_path):
    """A Qwen-Image-Edit Plus folder (as Qwen publish it) is the ``qwen-edit-plus`` family;
    its transformer in one file cannot be told from Qwen-Image's, and says so."""
    folder = tmp_path / "Qwen-Image-Edit-2509"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text(
        json.dumps({"_class_name": "QwenImageEditPlusPipeline"})
    )
    (folder / "transformer" / "config.json").write_text(json.dumps({"in_channels": 64}))
    save_file({"w": torch.zeros(1)}, str(folder / "transformer" / "model.safetensors"))
    assert probe(folder) == Probe("qwen-edit-plus", True, "diffusers")
    path = tmp_path / "qwen_image_edit_2509.safetensors"
    save_file({"transformer_blocks.0.img_mod.1.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(Unsupported, match="cannot be told from the file"):
        probe(path)
