"""Layers made into regions (issue 80, ``engine.layers``): Krita AI Diffusion's rules, on
masks drawn here. No model, no database."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from inpainting.engine import (
    ControlNetUse,
    EngineConfig,
    InpaintRequest,
    InvalidInput,
    MaskOptions,
    Outpaint,
    ProgressEvent,
    get_backend,
    run_inpaint,
)
from inpainting.engine.layers import (
    MAX_LAYERS,
    Layer,
    regions_of,
    run_layers_in_turn,
)
from tests.engine.test_runner import SolidBackend
from tests.images import gradient

H, W = 40, 50


def box(x0: int, y0: int, x1: int, y1: int, value: float = 1.0) -> np.ndarray:
    mask = np.zeros((H, W), np.float32)
    mask[y0:y1, x0:x1] = value
    return mask


def test_an_upper_layer_is_subtracted_from_the_ones_below_and_the_rest_is_the_prompts():
    """Bottom up, the upper layer keeps what it covers; the area regenerated is the layers'
    union (nothing left for the prompt alone), or the job's own mask, whose part outside
    every layer the job's prompt paints."""
    scarf = Layer("scarf", box(0, 0, 30, 40), "a red scarf")  # bottom
    window = Layer("window", box(20, 0, 50, 20), "a window")  # top, overlapping the scarf
    made = regions_of([scarf, window], "a room")
    assert [r.name for r in made.regions] == ["scarf", "window"] and made.warnings == []
    lower, upper = (r.mask for r in made.regions)
    assert np.array_equal(upper, window.mask)  # the top layer keeps all it covers
    assert lower[10, 25] == 0 and lower[30, 25] == 1 and lower[10, 5] == 1  # overlap: the top's
    assert not np.any(lower * upper)  # every pixel belongs to one layer at most
    assert np.allclose(made.area, np.clip(scarf.mask + window.mask, 0, 1))
    assert not made.rest.any() and made.prompt == "a room"
    assert made.words(made.regions[0]) == "a red scarf, a room"
    area = box(0, 0, 50, 30)  # the job's own mask: its lower band is outside it
    within = regions_of([scarf, window], "a room", area)
    assert not within.regions[0].mask[30:].any()  # a layer is kept within the mask
    rest = within.rest
    assert rest[25, 40] == 1 and rest[10, 40] == 0 and rest[5, 5] == 0 and not rest[30:].any()


def test_soft_edges_share_a_pixel_without_covering_it_twice():
    lower = Layer("lower", box(0, 0, 50, 40), "grass")
    upper = Layer("upper", box(0, 0, 50, 40, 0.5), "mist")
    made = regions_of([lower, upper], "")
    covered = sum(r.mask for r in made.regions)
    assert np.allclose(covered, 1.0) and np.allclose(made.rest, 0.0)
    assert np.allclose(made.area, 1.0)
    assert np.allclose(made.regions[0].mask, 0.5)  # what the mist leaves


def test_a_tiny_layer_is_left_out_and_named_a_nearly_whole_one_is_the_prompt():
    crumb = Layer("crumb", box(0, 0, 4, 4), "a crumb")  # 16 of 2,000 pixels: 0.8 %
    sky = Layer("sky", box(0, 0, 50, 40), "a stormy sky")  # all: 95 % once the cup is above
    cup = Layer("cup", box(10, 10, 20, 20), "a cup")
    made = regions_of([sky, crumb, cup], "a photo")
    assert [r.name for r in made.regions] == ["cup"]
    assert made.prompt == "a photo, a stormy sky"
    said = [w["message"] for w in made.warnings]
    assert "Layer 'crumb' covers 0.8% of the picture (under 2%" in said[0]
    assert said[1] == "Layer 'sky' covers 95% of the picture: its prompt is the whole picture's."
    assert all(w["field"] == "layers" for w in made.warnings)
    # A layer made tiny by the ones above it is left out too (it covers what they cover).
    hidden = regions_of([Layer("under", box(10, 10, 21, 20), "x"), cup], "")
    assert [r.name for r in hidden.regions] == ["cup"] and "'under'" in hidden.warnings[0][
        "message"
    ]


def test_what_a_job_may_not_send_is_refused():
    one = Layer("a", box(0, 0, 10, 10), "x")
    with pytest.raises(InvalidInput, match=f"At most {MAX_LAYERS} layers a job; this one has 9"):
        regions_of([one] * (MAX_LAYERS + 1), "")
    with pytest.raises(InvalidInput, match="at least one layer"):
        regions_of([], "")
    with pytest.raises(InvalidInput, match="Layer 'b''s mask is 10x10; the others' are 50x40"):
        regions_of([one, Layer("b", np.zeros((10, 10)), "y")], "")
    with pytest.raises(InvalidInput, match="select no pixels"):
        regions_of([Layer("empty", box(0, 0, 0, 0), "x")], "")


class PromptColour(SolidBackend):
    """Paints a colour read from the prompt's words (``red``, ``blue``...), and records the
    calls: which prompt, on which picture."""

    COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}

    def inpaint(self, call, progress, is_cancelled):
        self.colour = next(c for word, c in self.COLOURS.items() if word in call.prompt)
        progress(ProgressEvent(1, 1))
        return super().inpaint(call, progress, is_cancelled)


def test_layers_run_in_turn_each_with_its_prompt_and_nothing_outside_them_changes():
    """An engine without a one-call path repaints the regions bottom up, each with its own
    prompt, on what the one below left: the top layer's colour wins where they overlapped,
    and every pixel outside every layer is the input's, byte for byte."""
    picture = gradient(W, H)
    layers = [
        Layer("scarf", box(0, 0, 30, 40), "a red scarf"),
        Layer("window", box(20, 0, 50, 20), "a blue window"),
    ]
    backend, events = PromptColour(), []
    request = InpaintRequest(
        image=picture, mask=None, prompt="green room", mask_options=MaskOptions(blur=0)
    )
    result = run_layers_in_turn(
        request, regions_of(layers, "green room"), backend, progress=events.append
    )
    out, before = np.asarray(result.images[0]), np.asarray(picture)
    assert [call.prompt for call in backend.calls] == [
        "a red scarf, green room",
        "a blue window, green room",
    ]
    assert tuple(out[30, 10]) == (220, 30, 30) and tuple(out[10, 25]) == (30, 30, 220)  # top wins
    assert np.array_equal(out[20:, 30:], before[20:, 30:])  # outside every layer
    assert result.metadata["layered"] == {"ran": "in turn", "regions": ["scarf", "window"]}
    assert [(e.step, e.total) for e in events] == [(1, 2), (2, 2)]
    # A layer's prompt changed changes its region only.
    layers[0] = Layer("scarf", layers[0].mask, "a green scarf")
    again = np.asarray(
        run_layers_in_turn(request, regions_of(layers, "green room"), PromptColour()).images[0]
    )
    changed = np.any(again != out, axis=2)
    assert changed[30, 10] and not changed[10, 25] and not changed[20:, 30:].any()
    assert not changed[:, 30:].any()  # the scarf's region ends at x = 30


def test_the_classical_engine_fills_the_layers_in_turn():
    picture = gradient(W, H)
    layers = [Layer("a", box(5, 5, 20, 20), ""), Layer("b", box(25, 10, 45, 30), "")]
    request = InpaintRequest(image=picture, mask=None, mask_options=MaskOptions(blur=0))
    backend = get_backend("classical", EngineConfig())
    result = run_layers_in_turn(request, regions_of(layers, ""), backend)
    out, before = np.asarray(result.images[0]).astype(int), np.asarray(picture).astype(int)
    union = (box(5, 5, 20, 20) + box(25, 10, 45, 30)) > 0
    assert np.array_equal(out[~union], before[~union])
    assert result.engine == "classical" and result.metadata["layered"]["regions"] == ["a", "b"]


class RegionsBackend(SolidBackend):
    """Paints regions in one call (as the diffusion families that can do): records each
    call's regions."""

    regions_in_one_call = True
    working_size = 64
    size_multiple = 8


def test_a_backend_that_paints_regions_gets_them_in_one_call_in_its_own_frame():
    """One call: the area as the hole, each region's words and mask brought to the call's
    frame as the mask is (the crop around the area, then the working size)."""
    picture = gradient(400, 300)
    big = np.zeros((300, 400), np.float32)
    big[100:140, 100:180] = 1  # a 80x40 layer...
    other = np.zeros((300, 400), np.float32)
    other[100:140, 180:260] = 1  # ...and another beside it
    request = InpaintRequest(
        image=picture,
        mask=None,
        prompt="a street",
        mask_options=MaskOptions(blur=0),
        inpaint_area="masked",
        padding=0,
        layers=(Layer("left", big, "a red door"), Layer("right", other, "a blue door")),
    )
    backend = RegionsBackend()
    result = run_inpaint(request, backend)
    (call,) = backend.calls
    assert call.prompt == "a street"
    assert [r.prompt for r in call.regions] == ["a red door, a street", "a blue door, a street"]
    assert all(r.mask.size == call.image.size == call.hole.size for r in call.regions)
    left, right = (np.asarray(r.mask) > 127 for r in call.regions)
    hole = np.asarray(call.hole) > 0
    assert np.array_equal(left | right, hole) and not (left & right).any()
    assert (
        left[:, : call.image.width // 2 - 2].all()
        and not left[:, call.image.width // 2 + 2 :].any()
    )
    assert result.metadata["layered"] == {"ran": "one call", "regions": ["left", "right"]}
    assert result.images[0].size == (400, 300)


def test_a_job_mask_wider_than_the_layers_paints_the_rest_with_the_prompt_first():
    picture = gradient(W, H)
    request = InpaintRequest(
        image=picture,
        mask=Image.fromarray(np.where(box(0, 0, 50, 30) > 0, 0, 255).astype(np.uint8), "L"),
        prompt="green room",
        mask_options=MaskOptions(blur=0),
        layers=(Layer("scarf", box(0, 0, 30, 40), "a red scarf"),),
    )
    backend, events = PromptColour(), []
    result = run_inpaint(request, backend, progress=events.append)
    assert [call.prompt for call in backend.calls] == ["green room", "a red scarf, green room"]
    out, before = np.asarray(result.images[0]), np.asarray(picture)
    assert tuple(out[10, 40]) == (30, 200, 30) and tuple(out[10, 10]) == (220, 30, 30)
    assert np.array_equal(out[30:, 30:], before[30:, 30:])  # outside the job's mask
    assert tuple(out[35, 10]) == tuple(before[35, 10])  # the layer is kept within the mask
    assert [(e.step, e.total) for e in events] == [(1, 2), (2, 2)]
    with pytest.raises(InvalidInput, match="samples must be 1"):
        run_inpaint(replace(request, samples=2), backend)
    with pytest.raises(InvalidInput, match="no outpaint"):
        run_inpaint(replace(request, outpaint=Outpaint(left=8)), backend)


def test_a_control_net_or_a_reference_picture_sends_the_layers_in_turn_where_one_call_exists():
    picture = gradient(W, H)
    layers = (
        Layer("scarf", box(0, 0, 30, 40), "a red scarf"),
        Layer("w", box(30, 0, 50, 20), "a blue window"),
    )
    request = InpaintRequest(
        image=picture,
        mask=None,
        prompt="green room",
        mask_options=MaskOptions(blur=0),
        layers=layers,
        controlnet=ControlNetUse(path="cn"),
    )

    class Both(PromptColour):
        regions_in_one_call = True

    for steered in (request, replace(request, controlnet=None, reference_images=(picture,))):
        backend = Both()
        result = run_inpaint(steered, backend)
        assert len(backend.calls) == 2 and result.metadata["layered"]["ran"] == "in turn"
        assert all(not call.regions for call in backend.calls)


def test_lama_fills_the_layers_in_turn(tiny_lama):
    """LaMa, as the classical engine: one fill a layer, bottom up, nothing outside them."""
    picture = gradient(W, H)
    layers = (Layer("a", box(5, 5, 20, 20), "x"), Layer("b", box(25, 10, 45, 30), "y"))
    request = InpaintRequest(
        image=picture, mask=None, mask_options=MaskOptions(blur=0), layers=layers
    )
    backend = get_backend("lama", EngineConfig(lama_model=str(tiny_lama.dynamic)))
    sessions = []
    real = backend.inpaint
    backend.inpaint = lambda call, *rest: sessions.append(call) or real(call, *rest)
    result = run_inpaint(request, backend)
    out, before = np.asarray(result.images[0]), np.asarray(picture)
    union = (box(5, 5, 20, 20) + box(25, 10, 45, 30)) > 0
    assert np.array_equal(out[~union], before[~union])
    assert len(sessions) == 2 and result.engine == "lama"
    assert result.metadata["layered"] == {"ran": "in turn", "regions": ["a", "b"]}
