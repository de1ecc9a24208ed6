"""Layers painted in one pipeline call (issue 80, ``backends.regional``) on the tiny random
models: a two-layer job is one pipeline call; the attention bias lets a pixel of a region see
its region's tokens only and a pixel outside every region the whole picture's only; another
prompt for a layer changes its pixels and none outside every layer; the model's own attention
processors are back after the call."""

from __future__ import annotations

from dataclasses import replace

import diffusers
import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from PIL import Image

from inpainting.engine import (
    Cancelled,
    InpaintRequest,
    InvalidInput,
    MaskOptions,
    get_backend,
    run_inpaint,
)
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.backends.regional import BLOCKED, RegionalAttention, RegionPlan
from inpainting.engine.layers import Layer
from inpainting.engine.runner import batch_key
from inpainting.engine.types import BackendCall, IpAdapterUse, Region
from inpainting.testing.tiny_flow import write_tiny_flux2_klein_model, write_tiny_flux_fill_model
from inpainting.testing.tiny_model import tiny_config, write_tiny_sdxl_inpaint_model
from tests.images import gradient

SIZE = 64  # the UNets' size; FLUX's picture tokens are 16 px: it runs at 128
LEFT = (slice(8, 56), slice(0, 24))  # rows, columns at 64 px: the first layer
RIGHT = (slice(8, 56), slice(40, 64))  # the second
#: (x, y) at 64 px of a pixel in the first layer, in neither (between them), in the second.
IN_LEFT, IN_NEITHER, IN_RIGHT = (12, 32), (32, 32), (52, 32)


def scaled(where: tuple[slice, slice], size: int) -> tuple[slice, ...]:
    return tuple(slice(s.start * size // SIZE, s.stop * size // SIZE) for s in where)


def layer(name: str, where: tuple[slice, slice], prompt: str, size: int) -> Layer:
    mask = np.zeros((size, size), np.float32)
    mask[scaled(where, size)] = 1.0
    return Layer(name, mask, prompt)


def layered(right: str = "a blue sky", size: int = SIZE) -> InpaintRequest:
    return InpaintRequest(
        image=gradient(size, size),
        mask=None,
        prompt="a tree",
        num_inference_steps=3,
        seed=7,
        mask_options=MaskOptions(blur=0),
        layers=(
            layer("left", LEFT, "a red rose", size),
            layer("right", RIGHT, right, size),
        ),
    )


def outside_every_layer_kept(results: list, size: int = SIZE) -> bool:
    """Every pixel outside both layers is the input's, byte for byte, in every result."""
    original = np.asarray(gradient(size, size))
    outside = np.ones((size, size), bool)
    outside[scaled(LEFT, size)] = outside[scaled(RIGHT, size)] = False
    return all((np.asarray(r.images[0])[outside] == original[outside]).all() for r in results)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return write_tiny_sdxl_inpaint_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(params=["sd15", "sdxl"])
def model(request, tiny_model):
    return tiny_model if request.param == "sd15" else request.getfixturevalue("sdxl")


def spy_calls(monkeypatch, pipe) -> list[RegionalAttention]:
    """Each pipeline call on ``pipe`` records one of the regional processors it ran with."""
    cls = type(pipe)
    real_call = cls.__call__
    seen: list[RegionalAttention | None] = []

    def spy(self, *args, **kwargs):
        processors = self.unet.attn_processors.values()
        seen.append(next((p for p in processors if isinstance(p, RegionalAttention)), None))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", spy)
    return seen


def test_two_layers_run_in_one_call_each_region_seeing_its_own_words(model, monkeypatch):
    backend = get_backend("diffusers", tiny_config(model, working_size=SIZE))
    assert backend.regions_in_one_call
    pipe = load_pipeline(str(model), "cpu")
    assert isinstance(
        pipe, diffusers.StableDiffusionInpaintPipeline | diffusers.StableDiffusionXLInpaintPipeline
    )
    stock = dict(pipe.unet.attn_processors)
    seen = spy_calls(monkeypatch, pipe)

    first = run_inpaint(layered(), backend)

    (processor,) = seen  # one pipeline call, with the regional processors
    assert processor is not None
    after = pipe.unet.attn_processors
    assert after.keys() == stock.keys() and all(after[k] is stock[k] for k in stock)
    plan = processor.plan
    tokens = plan.tokens
    assert set(tokens.tolist()) == {0, 1, 2}
    assert plan.biases  # one a resolution of the UNet's cross-attention
    for queries, bias in plan.biases.items():  # [pixels, tokens]
        height, width = plan.grid(queries)
        for (x, y), segment in ((IN_LEFT, 1), (IN_NEITHER, 0), (IN_RIGHT, 2)):
            pixel = bias[y * height // SIZE * width + x * width // SIZE]
            assert (pixel == 0).equal(tokens == segment)
            assert (pixel[tokens != segment] == BLOCKED).all()

    second = run_inpaint(layered(right="a cat"), backend)

    assert len(seen) == 2
    assert outside_every_layer_kept([first, second])
    a, b = (np.asarray(r.images[0]) for r in (first, second))
    assert (a[RIGHT] != b[RIGHT]).any(axis=-1).mean() > 0.5  # its layer's words changed it

    with pytest.raises(Cancelled):  # a job that stops midway leaves the stock processors too
        run_inpaint(layered(), backend, is_cancelled=lambda: len(seen) == 3)
    after = pipe.unet.attn_processors
    assert len(seen) == 3 and all(after[k] is stock[k] for k in stock)


def test_a_call_with_regions_shares_no_batch():
    picture, mask = gradient(64, 64), Image.new("L", (64, 64), 255)

    def call(*regions: Region) -> BackendCall:
        return BackendCall(picture, mask, "a tree", "", 1.0, 4, 7.5, [1], regions=regions)

    assert batch_key(call()) == batch_key(call())
    assert batch_key(call()) != batch_key(call(Region("a cat", mask)))
    assert batch_key(call(Region("a cat", mask))) != batch_key(call(Region("a cat", mask)))


def test_the_backend_refuses_regions_with_an_ip_adapter(tiny_model):
    """``run_inpaint`` sends such a job's layers in turn; a call that still brings both is
    refused, not painted with an attention the regions do not split."""
    backend = get_backend("diffusers", tiny_config(tiny_model, working_size=SIZE))
    picture, mask = gradient(SIZE, SIZE), Image.new("L", (SIZE, SIZE), 255)
    call = BackendCall(
        picture,
        mask,
        "a tree",
        "",
        1.0,
        2,
        7.5,
        [1],
        reference_images=(picture,),
        ip_adapter=IpAdapterUse(path="/nowhere", weight_name="ip.safetensors"),
        regions=(Region("a cat", mask),),
    )
    with pytest.raises(InvalidInput, match="take no ControlNet or IP-Adapter"):
        backend.inpaint(call, lambda event: None, lambda: False)


def test_a_pixel_attends_as_if_its_segments_tokens_were_the_only_ones():
    """The regional cross-attention of a pixel equals the stock one over its segment's tokens
    alone: a region's pixels read its prompt, the others the whole picture's."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    stock = AttnProcessor2_0()
    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255  # the left half of a 32 px picture, a 4 x 4 latent at 8 px
    plan = RegionPlan([Image.fromarray(mask, "L")], [5, 3], (4, 4))
    pixels, words = torch.randn(1, 16, 16), torch.randn(1, 8, 16)
    with torch.no_grad():
        regional = RegionalAttention(stock, plan)
        mixed = regional(attn, pixels, words)
        whole = stock(attn, pixels, words[:, :5])
        region = stock(attn, pixels, words[:, 5:])
        assert regional(attn, pixels).equal(stock(attn, pixels))  # self-attention: as it was
    left = torch.zeros(4, 4, dtype=torch.bool)
    left[:, :2] = True
    left = left.flatten()
    assert torch.allclose(mixed[0, left], region[0, left], atol=1e-6)
    assert torch.allclose(mixed[0, ~left], whole[0, ~left], atol=1e-6)
    assert not torch.allclose(mixed[0, left], whole[0, left], atol=1e-3)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return write_tiny_flux_fill_model(tmp_path_factory.mktemp("flux") / "tiny-flux-fill")


@pytest.fixture(scope="module")
def klein(tmp_path_factory):
    return write_tiny_flux2_klein_model(tmp_path_factory.mktemp("klein") / "FLUX.2-klein-4B")


@pytest.fixture(scope="module")
def klein_base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("klein-base") / "FLUX.2-klein-base-4B"
    return write_tiny_flux2_klein_model(folder, distilled=False)


#: The transformer families: the model's fixture, its inpaint pipeline, the argument its
#: attention's keywords travel in, how many times the picture's tokens run through it, the
#: guidance (FLUX.2 [klein] base: classifier-free, a second pass with the same mask).
JOINT = {
    "flux": ("flux", diffusers.FluxFillPipeline, "joint_attention_kwargs", 1, 30.0),
    "klein": ("klein", diffusers.Flux2KleinInpaintPipeline, "attention_kwargs", 2, 1.0),
    "klein-base": ("klein_base", diffusers.Flux2KleinInpaintPipeline, "attention_kwargs", 2, 4.0),
}


@pytest.mark.parametrize("family", list(JOINT))
def test_a_transformer_paints_two_layers_in_one_call_with_the_joint_attention_mask(
    family, request, monkeypatch
):
    """FLUX.1 Fill and FLUX.2 [klein]: a segment's words see themselves and their region's
    picture tokens (every copy of them), a picture token every picture token and its
    segment's words only."""
    fixture, pipeline, argument, copies, guidance = JOINT[family]
    size = 2 * SIZE  # an 8 x 8 grid of picture tokens (16 px each)
    model = request.getfixturevalue(fixture)
    backend = get_backend("diffusers", tiny_config(model, working_size=size))
    assert backend.regions_in_one_call
    masks = []
    real_call = pipeline.__call__

    def spy(self, *args, **kwargs):
        masks.append(kwargs[argument]["attention_mask"][0, 0])
        if "negative_prompt_embeds" in kwargs:  # the guiding pass: its words laid out alike
            assert kwargs["negative_prompt_embeds"].shape == kwargs["prompt_embeds"].shape
            negatives.append(family)
        return real_call(self, *args, **kwargs)

    negatives = []
    monkeypatch.setattr(pipeline, "__call__", spy)
    job = replace(layered(size=size), guidance_scale=guidance)
    first = run_inpaint(job, backend)

    (mask,) = masks  # one pipeline call
    grid = size // 16
    text = mask.shape[0] - copies * grid * grid  # the words' tokens come first
    seen = mask == 0

    def tokens(x: int, y: int) -> list[int]:  # a pixel's picture token in each copy
        at = y * grid // SIZE * grid + x * grid // SIZE
        return [text + copy * grid * grid + at for copy in range(copies)]

    left, neither, right = (tokens(*point) for point in (IN_LEFT, IN_NEITHER, IN_RIGHT))
    words = [seen[pixel[0], :text] for pixel in (neither, left, right)]  # segments 0, 1, 2
    assert all(w.any() for w in words) and words[0][0]  # the whole picture's words come first
    assert not (words[0] & words[1]).any() and not (words[1] & words[2]).any()
    assert not (words[0] & words[2]).any() and (words[0] | words[1] | words[2]).all()
    assert seen[text:, text:].all()  # picture tokens see each other
    assert (mask[~seen] == BLOCKED).all()
    for pixel, own in zip((neither, left, right), words, strict=True):
        for token in pixel:
            assert seen[token, :text].equal(own) and seen[:text, token].equal(own)
        assert seen[:text][own, :text].equal(own.expand(int(own.sum()), -1))  # their own words

    assert negatives == (["klein-base"] if family == "klein-base" else [])

    second = run_inpaint(replace(job, layers=layered("a cat", size).layers), backend)
    assert len(masks) == 2 and outside_every_layer_kept([first, second], size)
    a, b = (np.asarray(r.images[0]) for r in (first, second))
    assert (a[scaled(RIGHT, size)] != b[scaled(RIGHT, size)]).any()  # its layer's words
