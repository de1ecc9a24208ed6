"""Qwen-Image-Edit (issue 36) through the same backend and runner as inpainting, on tiny random
pipelines the tests build offline in Qwen's layout (the Qwen-Image MMDiT and VAE, a Qwen2.5-VL
text encoder with its vision tower, its tokenizer and ``processor/``): the folders are told
apart, load with the network forbidden and without torchvision (the processor is built from
``processor/`` with transformers' PIL image processor); a masked edit keeps every pixel
outside the effective mask and changes the inside; a mask-less edit changes the whole picture
at the input's size; the Plus release's reference pictures reach its pipeline."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import diffusers
import numpy as np
import pytest
from diffusers import AutoencoderKLQwenImage
from diffusers.pipelines.qwenimage import (
    pipeline_qwenimage_edit_inpaint,
    pipeline_qwenimage_edit_plus,
)

from inpainting.engine import InvalidInput, get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.loading import speed_up
from inpainting.engine.backends.picture_area import PIPELINE_AREA, picture_area
from inpainting.engine.backends.qwen_vl import PictureProcessor
from inpainting.engine.probe import Probe, probe
from inpainting.testing.tiny_flow import write_tiny_qwen_edit_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import box_mask, gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def qwen_edit(tmp_path_factory):
    return write_tiny_qwen_edit_model(tmp_path_factory.mktemp("qwen") / "Qwen-Image-Edit")


@pytest.fixture(scope="module")
def qwen_edit_plus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qwen") / "Qwen-Image-Edit-2509"
    return write_tiny_qwen_edit_model(folder, plus=True)


def edit_request(**overrides):
    return inpaint_request(**{"prompt": "make the sky red", "guidance_scale": 2.5, **overrides})


def changed(result, image) -> np.ndarray:
    return (np.asarray(result.images[0]) != np.asarray(image.convert("RGB"))).any(axis=2)


def test_the_folders_load_without_torchvision_and_with_the_network_forbidden(
    qwen_edit, qwen_edit_plus, monkeypatch
):
    assert importlib.util.find_spec("torchvision") is None  # the machine this runs on
    assert probe(qwen_edit) == Probe("qwen-edit", True, "diffusers")
    assert probe(qwen_edit_plus) == Probe("qwen-edit-plus", True, "diffusers")
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        backend = get_backend("diffusers", tiny_config(qwen_edit))
        result = run_inpaint(edit_request(), backend)
    assert attempts == []
    assert result.metadata["family"] == "qwen-edit"
    assert isinstance(backend.load().processor, PictureProcessor)


def test_a_masked_edit_changes_the_mask_only(qwen_edit):
    backend = get_backend("diffusers", tiny_config(qwen_edit))
    req = edit_request()
    result = run_inpaint(req, backend)
    assert kept_exactly(result, req)
    assert result.metadata["edit"] == "masked"
    assert result.metadata["edit_pipeline"] == "QwenImageEditInpaintPipeline"
    inside = np.asarray(req.mask) == 0  # black inpaints here
    assert changed(result, req.image)[inside].mean() > 0.5


def test_an_edit_without_a_mask_changes_the_whole_picture_at_its_size(qwen_edit):
    backend = get_backend("diffusers", tiny_config(qwen_edit))
    image = gradient(100, 70)  # not a multiple of 16: worked at 64 x 48, brought back
    result = run_inpaint(edit_request(image=image, mask=None), backend)
    assert result.images[0].size == (100, 70)
    assert result.metadata["edit"] == "whole"
    assert result.metadata["edit_pipeline"] == "QwenImageEditPipeline"
    assert changed(result, image).mean() > 0.9


def test_the_plus_release_reads_the_reference_pictures(qwen_edit_plus, monkeypatch):
    """The pipeline is handed the picture and the references, in order (seen in the call)."""
    seen = []
    real_call = diffusers.QwenImageEditPlusPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append([picture.size for picture in kwargs["image"]])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.QwenImageEditPlusPipeline, "__call__", spy)
    backend = get_backend("diffusers", tiny_config(qwen_edit_plus))
    references = (gradient(40, 30), gradient(50, 20))
    req = edit_request(reference_images=references)
    result = run_inpaint(req, backend)
    assert seen == [[(64, 48), (40, 30), (50, 20)]]  # the working picture, then the two
    assert result.metadata["reference_images"] == 2
    assert kept_exactly(result, req)  # a mask still keeps everything outside it
    with pytest.raises(InvalidInput, match="at most 2 reference pictures"):
        run_inpaint(edit_request(reference_images=references * 2), backend)


def test_the_pipelines_read_pictures_at_the_working_sizes_area(qwen_edit, monkeypatch):
    """Diffusers' Qwen pipelines bring every picture to 1 MP whatever the call asks: the
    backend has them read it at its working size's square (INPAINT_WORKING_SIZE, 64 here; at
    the family's 1024 px that is the pipelines' own 1 MP, left as it is), and afterwards the
    pipeline's module is as diffusers wrote it."""
    module = pipeline_qwenimage_edit_inpaint
    calculate = module.calculate_dimensions
    encoded = []
    real_encode = diffusers.AutoencoderKLQwenImage.encode

    def spy(self, x, *args, **kwargs):
        encoded.append(tuple(x.shape[-2:]))
        return real_encode(self, x, *args, **kwargs)

    monkeypatch.setattr(diffusers.AutoencoderKLQwenImage, "encode", spy)
    backend = get_backend("diffusers", tiny_config(qwen_edit))
    req = edit_request(
        image=gradient(64, 64), mask=box_mask(64, 64, (16, 16, 48, 48), inpaint_white=False)
    )
    result = run_inpaint(req, backend)
    assert kept_exactly(result, req)
    assert encoded and set(encoded) == {(64, 64)}  # not 1024 x 1024
    assert module.calculate_dimensions is calculate
    pipe = backend.load()
    with picture_area(pipe, PIPELINE_AREA):  # the family's own working size: untouched
        assert module.calculate_dimensions is calculate
    with picture_area(pipe, 64 * 64):
        assert module.calculate_dimensions(1024 * 1024, 1.0)[:2] == (64, 64)
    assert module.calculate_dimensions(1024 * 1024, 1.0)[:2] == (1024, 1024)


def test_the_area_is_the_modules_only_while_it_lasts_even_when_the_call_fails():
    """The Plus pipeline's pictures (its 1 MP output and VAE sizes; not the 384 px it shows the
    text encoder) at the working size's area, a wide picture's shape kept; the module restored
    when the call raises."""
    plus = pipeline_qwenimage_edit_plus
    calculate = plus.calculate_dimensions
    pipeline = type("Pipeline", (), {"__module__": plus.__name__})()
    with pytest.raises(RuntimeError, match="cancelled"), picture_area(pipeline, 64 * 64):
        assert plus.calculate_dimensions(plus.VAE_IMAGE_SIZE, 2.0)[:2] == (96, 32)
        assert plus.calculate_dimensions(1024 * 1024, 1.0)[:2] == (64, 64)
        assert plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, 1.0)[:2] == (384, 384)
        raise RuntimeError("cancelled mid-run")
    assert plus.calculate_dimensions is calculate
    assert plus.calculate_dimensions(plus.VAE_IMAGE_SIZE, 1.0)[:2] == (1024, 1024)


def test_the_cuda_fast_path_takes_qwens_3d_vae_as_it_is(qwen_edit):
    """On CUDA the worker's fast path asks for channels-last (``speed_up``). Qwen-Image's VAE
    has 3-D convolutions (5-D weights), which that format cannot take: on an H100
    (2026-11-26) loading Qwen-Image-Edit failed with "required rank 4 tensor to use
    channels_last format". A transformer family's VAE is left as it is."""
    vae = AutoencoderKLQwenImage.from_pretrained(qwen_edit / "vae")
    assert any(weight.dim() == 5 for weight in vae.parameters())
    before = {name: weight.stride() for name, weight in vae.named_parameters()}
    pipe = SimpleNamespace(vae=vae)
    speed_up(pipe, denoiser="transformer", channels_last=True, fuse_qkv=False, compile_unet=False)
    assert {name: weight.stride() for name, weight in vae.named_parameters()} == before
