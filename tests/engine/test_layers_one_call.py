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

from inpainting.engine import Cancelled, InpaintRequest, InvalidInput, MaskOptions, get_backend
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.backends.regional import BLOCKED, RegionalAttention, RegionPlan
from inpainting.engine.layers import Layer, run_layered
from inpainting.engine.runner import batch_key
from inpainting.engine.types import BackendCall, IpAdapterUse, Region
from inpainting.testing.tiny_model import tiny_config, write_tiny_sdxl_inpaint_model
from tests.images import gradient

SIZE = 64
LEFT = (slice(8, 56), slice(0, 24))  # rows, columns: the first layer
RIGHT = (slice(8, 56), slice(40, 64))  # the second
#: (x, y) of a pixel in the first layer, in neither (between them), in the second.
IN_LEFT, IN_NEITHER, IN_RIGHT = (12, 32), (32, 32), (52, 32)


def layer(name: str, where: tuple[slice, slice], prompt: str) -> Layer:
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[where] = 1.0
    return Layer(name, mask, prompt)


def layered(right: str = "a blue sky") -> InpaintRequest:
    return InpaintRequest(
        image=gradient(SIZE, SIZE),
        mask=None,
        prompt="a tree",
        num_inference_steps=3,
        seed=7,
        mask_options=MaskOptions(blur=0),
        layers=(layer("left", LEFT, "a red rose"), layer("right", RIGHT, right)),
    )


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

    first = run_layered(layered(), backend)

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

    second = run_layered(layered(right="a cat"), backend)

    assert len(seen) == 2
    a, b = (np.asarray(r.images[0]).astype(int) for r in (first, second))
    original = np.asarray(gradient(SIZE, SIZE)).astype(int)
    outside = np.ones((SIZE, SIZE), bool)
    outside[LEFT] = outside[RIGHT] = False
    assert (a[outside] == original[outside]).all() and (b[outside] == original[outside]).all()
    assert (a[RIGHT] != b[RIGHT]).any(axis=-1).mean() > 0.5  # its layer's words changed it
    assert (a[LEFT] != original[LEFT]).any(axis=-1).mean() > 0.5

    with pytest.raises(Cancelled):  # a job that stops midway leaves the stock processors too
        run_layered(layered(), backend, is_cancelled=lambda: len(seen) == 3)
    after = pipe.unet.attn_processors
    assert len(seen) == 3 and all(after[k] is stock[k] for k in stock)


def test_a_call_with_regions_shares_no_batch():
    picture, mask = gradient(64, 64), Image.new("L", (64, 64), 255)

    def call(*regions: Region) -> BackendCall:
        return BackendCall(picture, mask, "a tree", "", 1.0, 4, 7.5, [1], regions=regions)

    assert batch_key(call()) == batch_key(call())
    assert batch_key(call()) != batch_key(call(Region("a cat", mask)))
    assert batch_key(call(Region("a cat", mask))) != batch_key(call(Region("a cat", mask)))


def test_an_ip_adapter_with_layers_in_one_call_is_refused(tiny_model):
    backend = get_backend("diffusers", tiny_config(tiny_model, working_size=SIZE))
    request = replace(
        layered(),
        ip_adapter=IpAdapterUse(path="/nowhere", weight_name="ip.safetensors"),
        reference_images=(gradient(64, 64),),
    )
    with pytest.raises(InvalidInput, match="take no ControlNet or IP-Adapter"):
        run_layered(request, backend)


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
