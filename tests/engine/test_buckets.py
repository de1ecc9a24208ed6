"""Working sizes in buckets and when a CUDA graph replays (issue 81): with CUDA_GRAPH_SIZES
an only-masked crop is brought to the declared size nearest its aspect (the crop grows to
that aspect first), a whole picture keeps its own working size, and a denoiser runs eager
wherever no graph was captured for its call."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inpainting.engine import EngineError, InpaintRequest, get_backend, run_inpaint
from inpainting.engine.backends.graphs import eager_because
from inpainting.engine.buckets import family_sizes, nearest, parse_sizes
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import kept_exactly
from tests.engine.test_runner import SolidBackend
from tests.images import box_mask, gradient


def test_the_declared_sizes_auto_a_list_or_off_and_a_wrong_one_said():
    own = family_sizes(1024, 16)
    assert own[0] == (1024, 1024) and (1024, 768) in own and (768, 1024) in own
    assert all(w % 16 == 0 and h % 16 == 0 and max(w, h) == 1024 for w, h in own)
    assert parse_sizes("auto", 1024, 16) == own
    assert parse_sizes("", 512, 8) == parse_sizes("off", 512, 8) == ()
    assert parse_sizes(" 512x512, 640X384 ,512x512", 512, 8) == ((512, 512), (640, 384))
    with pytest.raises(ValueError, match="'big' is not a size such as 1024x768"):
        parse_sizes("512x512,big", 512, 8)
    with pytest.raises(ValueError, match="not a multiple of 16"):
        parse_sizes("1000x1000", 1024, 16)
    with pytest.raises(ValueError, match="each side must be 64 to 4096"):
        parse_sizes("8192x64", 1024, 8)


def test_nearest_takes_the_aspect_nearest_and_the_first_of_equals():
    sizes = family_sizes(512, 8)
    assert nearest(300, 290, sizes) == (512, 512)
    assert nearest(900, 500, sizes) == (512, 288)  # 16:9
    assert nearest(100, 160, sizes) == (344, 512)  # 2:3
    assert nearest(10, 10, ((512, 512), (512, 512))) == (512, 512)


def wide_hole(**overrides) -> InpaintRequest:
    """A 600 x 400 picture with a wide box to regenerate (its crop about 5:2)."""
    values = dict(
        image=gradient(600, 400),
        mask=box_mask(600, 400, (100, 150, 350, 230), inpaint_white=False),
        inpaint_area="masked",
    )
    return InpaintRequest(**{**values, **overrides})


def test_an_only_masked_crop_is_brought_to_the_declared_size_nearest_its_aspect():
    declared = family_sizes(512, 8)
    backend = SolidBackend(working_size=512, working_sizes=declared)
    request = wide_hole()
    result = run_inpaint(request, backend)
    size = backend.calls[0].image.size
    assert size == (512, 288)  # 16:9, the nearest to the crop's 5:2 of the seven
    assert tuple(result.metadata["working_size"]) == size
    x0, y0, x1, y1 = result.metadata["crop"]  # the crop grew to that aspect
    assert abs((x1 - x0) / (y1 - y0) - 512 / 288) < 0.02
    assert kept_exactly(result, request)
    # Without declared sizes the crop keeps its own aspect at the working size's long side.
    plain = SolidBackend(working_size=512)
    run_inpaint(wide_hole(), plain)
    assert plain.calls[0].image.size not in declared and max(plain.calls[0].image.size) == 512


def test_a_whole_picture_is_not_bucketed():
    backend = SolidBackend(working_size=512, working_sizes=family_sizes(512, 8))
    run_inpaint(wide_hole(inpaint_area="whole"), backend)
    assert backend.calls[0].image.size == (512, 344)  # the picture's own 3:2, not stretched


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (dict(sizes=()), "CUDA_GRAPH_SIZES is off"),
        (dict(device="cpu"), "no CUDA device: graphs are captured on CUDA only"),
        (dict(compiled=True), "the denoiser is compiled (INPAINT_COMPILE)"),
        (dict(plan="model-offload"), "the memory plan model-offload moves weights during a step"),
        (dict(changed_by="a LoRA"), "a LoRA changes the denoiser: no graph was captured with it"),
        (dict(size=(640, 480)), "no graph for 640x480"),
        ({}, None),
    ],
)
def test_a_denoiser_replays_only_a_graph_captured_for_its_call(changes, why):
    situation = dict(
        device="cuda",
        sizes=((512, 512), (512, 384)),
        compiled=False,
        plan="gpu",
        changed_by=None,
        size=(512, 384),
        captured={(512, 512), (512, 384)},
    )
    assert eager_because(**{**situation, **changes}) == why


def test_the_diffusers_backend_buckets_and_says_why_its_denoiser_ran_eager(tiny_model):
    config = tiny_config(tiny_model, graph_sizes="auto")
    backend = get_backend("diffusers", config)
    assert backend.working_sizes == family_sizes(backend.working_size, 8)
    request = wide_hole(prompt="a rose", num_inference_steps=2, seed=3)
    result = run_inpaint(request, backend)
    assert tuple(result.metadata["working_size"]) in backend.working_sizes
    assert (
        result.metadata["cuda_graph"] == "eager: no CUDA device: graphs are captured on CUDA only"
    )
    assert kept_exactly(result, request)
    # Off (the default), the answer says nothing of graphs.
    plain = run_inpaint(request, get_backend("diffusers", tiny_config(tiny_model)))
    assert "cuda_graph" not in plain.metadata
    with pytest.raises(EngineError, match="CUDA_GRAPH_SIZES: '640' is not a size"):
        get_backend("diffusers", replace(config, graph_sizes="640"))
