"""A picture split into transparent layers (issue 80, ``engine.backends.split``) by a tiny
random Qwen-Image-Layered pipeline built here offline in Qwen's layout (its transformer with
the layers' 3D rope, a four-channel VAE, a Qwen2.5-VL text encoder and ``processor/``): N RGBA
layers at the picture's size, progress each step, cancel between
steps, and what a split may not ask refused before any work."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from inpainting.engine import Cancelled, InvalidInput
from inpainting.engine.backends import loading, split
from inpainting.engine.backends.split import split_layers
from inpainting.engine.layers import MAX_LAYERS
from inpainting.engine.splitting import SplitRequest
from tests.images import gradient
from tests.network import network_forbidden


@pytest.fixture
def qwen_layered(tiny_qwen_layered):
    return tiny_qwen_layered


def test_a_picture_splits_into_n_rgba_layers_of_its_size(qwen_layered, monkeypatch):
    picture = gradient(96, 64)
    events = []
    # guidance 1: no negative pass (the tiny transformer's cost is its attention over every
    # layer's tokens).
    request = SplitRequest(
        picture, layers=3, prompt="a gradient", num_inference_steps=2, guidance_scale=1.0, seed=4
    )
    with network_forbidden(monkeypatch):
        split = split_layers(qwen_layered, request, progress=events.append)
    assert len(split.layers) == 3 and split.seed == 4
    assert all(layer.mode == "RGBA" and layer.size == (96, 64) for layer in split.layers)
    assert [(e.step, e.total) for e in events] == [(1, 2), (2, 2)]
    alpha = np.stack([np.asarray(layer)[..., 3] for layer in split.layers])
    assert alpha.std() > 0  # a random model's layers, but layers with an alpha of their own


def test_a_split_is_cancelled_between_steps_and_refuses_what_it_may_not_ask(qwen_layered):
    picture = gradient(96, 64)
    with pytest.raises(Cancelled):
        split_layers(
            qwen_layered,
            SplitRequest(picture, layers=2, prompt="x", num_inference_steps=3, guidance_scale=1.0),
            is_cancelled=lambda: True,
        )
    for asked, field in (
        ({"layers": 1}, "layers"),
        ({"layers": MAX_LAYERS + 1}, "layers"),
        ({"resolution": 512}, "resolution"),
    ):
        with pytest.raises(InvalidInput) as refused:
            split_layers(qwen_layered, SplitRequest(picture, **asked))
        assert refused.value.field == field


def test_a_split_loads_its_pipeline_only_while_no_diffusion_model_loads(qwen_layered):
    """The worker loads its start-up model in a thread: a split loaded beside it came out on
    the meta device (diffusers' switch is global). The split waits for the loader's lock."""
    split._PIPELINES.clear()
    request = SplitRequest(gradient(64, 48), layers=2, prompt="x", num_inference_steps=1)
    done = []
    with loading.LOAD_LOCK:  # a diffusion model loading
        runner = threading.Thread(target=lambda: done.append(split_layers(qwen_layered, request)))
        runner.start()
        runner.join(1.0)
        assert runner.is_alive() and not split._PIPELINES  # waiting, nothing loaded
    runner.join(60)
    assert len(done[0].layers) == 2
