"""The lama backend on tiny LaMa-shaped ONNX graphs (the real big-lama file cannot be had here):
the same loading and running code, a graph that fills the hole with the mean known colour."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image, ImageDraw

from inpainting.engine import (
    Cancelled,
    EngineConfig,
    EngineError,
    InpaintRequest,
    InvalidInput,
    MaskOptions,
    Outpaint,
    check_fillable,
    effective_mask,
    get_backend,
    run_inpaint,
)
from inpainting.engine.backends.lama import LamaBackend, load_session
from inpainting.engine.runner import prepare
from inpainting.testing.tiny_lama import FIXED_SIDE, write_tiny_lama
from tests.images import box_mask, gradient

MAGENTA = np.array([255, 0, 255])


def backend_for(path) -> LamaBackend:
    return get_backend("lama", EngineConfig(lama_model=str(path)))


@pytest.fixture(params=["fixed", "dynamic"])
def lama(request, tiny_lama) -> LamaBackend:
    return backend_for(getattr(tiny_lama, request.param))


@pytest.fixture
def runs(monkeypatch):
    """Records the feeds of every session run of the backend it is given (then runs them)."""

    def spy_on(backend: LamaBackend) -> list[dict]:
        session = backend.load()
        real_run = session.run
        calls: list[dict] = []

        def run(output_names, feeds, *args, **kwargs):
            calls.append(feeds)
            return real_run(output_names, feeds, *args, **kwargs)

        monkeypatch.setattr(session, "run", run)
        return calls

    return spy_on


def box_request(width=120, height=80, box=(40, 20, 80, 60), **overrides) -> InpaintRequest:
    values = dict(
        image=gradient(width, height),
        mask=box_mask(width, height, box, inpaint_white=False),
        seed=7,
    )
    values.update(overrides)
    return InpaintRequest(**values)


def assert_preserved_and_filled(request, result) -> None:
    """Same size; every pixel outside the effective mask byte-identical; the masked ones new."""
    out = np.asarray(result.images[0])
    original = np.asarray(request.image)
    mask = effective_mask(request.mask, request.image.size, MaskOptions())
    assert out.shape == original.shape
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.9


def test_preserves_every_unmasked_pixel_and_keeps_the_size(lama):
    request = box_request()
    result = run_inpaint(request, lama)
    assert_preserved_and_filled(request, result)
    assert result.engine == "lama" and result.model == lama.model
    assert result.model.endswith(".onnx") and result.seeds == [7]
    assert result.metadata["prompt_ignored"] is True and "LaMa" in result.metadata["note"]


def test_the_session_is_opened_once_per_file(tiny_lama):
    first = backend_for(tiny_lama.fixed)
    assert first is backend_for(tiny_lama.fixed)
    assert load_session(str(tiny_lama.fixed)) is first.load() and first.loaded


def test_a_fixed_size_graph_gets_exactly_its_size_and_the_answer_is_cropped(tiny_lama, runs):
    lama = backend_for(tiny_lama.fixed)
    assert lama.working_size == FIXED_SIDE
    feeds = runs(lama)
    result = run_inpaint(box_request(), lama)
    assert result.metadata["working_size"] == [64, 40]  # 120x80 brought to a long side of 64
    assert len(feeds) == 1
    image, mask = feeds[0]["image"], feeds[0]["mask"]
    assert image.shape == (1, 3, 64, 64) and mask.shape == (1, 1, 64, 64)
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    # The padding below the 40 working rows: the image and its mask reflected together, so a
    # reflected copy of what is under the mask is hole as well, never context.
    assert (image[0, :, 40:48] == image[0, :, 38:30:-1]).all()
    assert (mask[0, 0, 40:48] == mask[0, 0, 38:30:-1]).all() and mask[0, 0, 40:].any()
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert result.images[0].size == (120, 80)


def test_a_dynamic_graph_gets_sides_padded_to_a_multiple_of_8(tiny_lama, runs):
    lama = backend_for(tiny_lama.dynamic)
    assert lama.working_size == 512
    feeds = runs(lama)
    image = np.asarray(gradient(50, 37))
    hole = np.zeros((37, 50), bool)
    hole[10:20, 15:30] = True
    filled = lama.fill(image, hole)
    assert feeds[0]["image"].shape == (1, 3, 40, 56) and feeds[0]["mask"].shape == (1, 1, 40, 56)
    assert filled.shape == image.shape and filled.dtype == np.uint8
    assert (filled[~hole] == image[~hole]).all()  # the tiny graph keeps known pixels


def test_only_masked_on_a_large_image(tiny_lama, runs):
    lama = backend_for(tiny_lama.fixed)
    feeds = runs(lama)
    request = box_request(1500, 1000, (700, 450, 760, 500))
    result = run_inpaint(request, lama)
    assert result.metadata["inpaint_area"] == "masked"
    x0, y0, x1, y1 = result.metadata["crop"]
    assert x0 <= 700 - 32 and y0 <= 450 - 32 and x1 >= 761 + 32 and y1 >= 501 + 32
    assert (x1 - x0) * (y1 - y0) < 0.05 * 1500 * 1000
    assert feeds[0]["image"].shape == (1, 3, 64, 64)
    assert_preserved_and_filled(request, result)


def test_cancel_raises_before_the_model_runs(lama, runs):
    feeds = runs(lama)
    call = prepare(box_request(), lama).call
    events = []
    with pytest.raises(Cancelled):
        lama.inpaint(call, events.append, lambda: True)
    assert feeds == [] and events == []


def test_one_run_serves_every_sample_with_a_progress_event_each(lama, runs):
    feeds = runs(lama)
    events = []
    result = run_inpaint(box_request(samples=3), lama, progress=events.append)
    assert len(feeds) == 1
    assert [(e.step, e.total) for e in events] == [(1, 3), (2, 3), (3, 3)]
    assert result.seeds == [7, 8, 9] and len(result.images) == 3
    first = np.asarray(result.images[0])
    assert all((np.asarray(image) == first).all() for image in result.images[1:])


def photo_with_a_magenta_disc(width=256, height=192):
    """A gradient with soft texture and grain (photo-like), a saturated disc on it, and a mask
    a little larger than the disc, as a person paints it (black = remove)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.asarray(gradient(width, height), np.float64)
    texture = 18 * np.sin(x / 9.0)[..., None] * np.cos(y / 13.0)[..., None]
    pixels = np.clip(base + texture + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    centre, radius = (150, 90), 30
    disc = [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius]
    ImageDraw.Draw(image).ellipse(disc, fill=tuple(MAGENTA))
    mask = Image.new("L", (width, height), 255)
    grown = [disc[0] - 4, disc[1] - 4, disc[2] + 4, disc[3] + 4]
    ImageDraw.Draw(mask).ellipse(grown, fill=0)
    return image, mask


def test_a_saturated_object_is_removed_with_the_default_parameters(lama):
    image, mask = photo_with_a_magenta_disc()
    assert (np.asarray(image) == MAGENTA).all(axis=-1).sum() > 2000
    result = run_inpaint(InpaintRequest(image=image, mask=mask), lama)
    out = np.asarray(result.images[0]).astype(np.float64)
    inside = np.asarray(mask) == 0
    distance = np.linalg.norm(out[inside] - MAGENTA, axis=-1)
    assert distance.min() > 80


def test_an_output_in_0_to_1_is_scaled_to_0_to_255(tiny_lama, tmp_path):
    unit = backend_for(write_tiny_lama(tmp_path / "unit.onnx", FIXED_SIDE, full_scale=1.0))
    request = box_request()
    expected = np.asarray(run_inpaint(request, backend_for(tiny_lama.fixed)).images[0])
    got = np.asarray(run_inpaint(request, unit).images[0])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert got[30:50, 50:70].mean() > 50  # not the near-black a 0..1 output would give


def test_outpainting_fills_the_new_area_from_the_context(tiny_lama):
    request = box_request(mask=None, outpaint=Outpaint(left=32))
    result = run_inpaint(request, backend_for(tiny_lama.fixed))
    out = np.asarray(result.images[0])
    assert out.shape == (80, 152, 3)
    assert (out[:, 32 + 8 :] == np.asarray(request.image)[:, 8:]).all()
    assert out[:, :24].mean() > 40  # the new area is painted, not left black


def test_a_mask_over_the_whole_image_is_refused():
    with pytest.raises(InvalidInput, match="lama engine fills a hole"):
        check_fillable("lama", np.full((8, 8), 255, np.uint8))


def test_auto_runs_prompt_less_removal_on_lama_when_its_file_is_present(tiny_lama):
    present = EngineConfig(engine="auto", load_diffusers=True, lama_model=str(tiny_lama.fixed))
    assert present.available() == ["classical", "lama", "diffusers"]
    assert present.choose(None) == "lama" and present.choose(None, "  ") == "lama"
    assert present.choose(None, "a red rose") == "diffusers"
    assert present.choose("classical") == "classical"
    absent = EngineConfig(engine="auto")
    assert absent.available() == ["classical"] and absent.choose(None) == "classical"
    named = EngineConfig(engine="classical", lama_model=str(tiny_lama.fixed))
    assert named.choose(None) == "classical" and named.choose("lama") == "lama"
    with pytest.raises(InvalidInput, match="'lama' engine is not installed") as refused:
        absent.choose("lama")
    assert refused.value.field == "engine"
    with pytest.raises(InvalidInput, match="Unknown engine 'llama'"):
        absent.choose("llama")


def test_a_missing_or_broken_file_is_an_engine_error(tmp_path):
    with pytest.raises(EngineError, match="LaMa model file"):
        get_backend("lama", EngineConfig())
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(EngineError, match="Could not load the LaMa model"):
        backend_for(broken).load()


def test_a_graph_that_is_not_lama_shaped_is_refused_when_it_loads(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not-lama",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    with pytest.raises(EngineError, match=r"does not look like LaMa: .*x \[1, 2, 8, 8\]"):
        backend_for(path).load()
