"""Erase mode (issue 84): what the mask covers is removed by the best remover here (LaMa
where its file is, else the classical engine; never a diffusion model, which may paint a new
object), the mask grown first by ``dilate_pixels`` so the object's shadow and edges go too;
the pixels outside the grown mask are the input's, byte for byte."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from skimage import data

from inpainting.engine import (
    EngineConfig,
    InvalidInput,
    MaskOptions,
    effective_mask,
    get_backend,
    run_inpaint,
)
from inpainting.params import GenerationParams
from tests.images import box_mask

SIZE = (120, 80)
BOX = (40, 24, 80, 56)


def photo() -> Image.Image:
    return Image.fromarray(data.chelsea()).resize(SIZE, Image.Resampling.LANCZOS)


def test_erase_runs_the_best_remover_here_and_refuses_a_diffusion_model(tiny_lama, tiny_model):
    with_lama = EngineConfig(lama_model=str(tiny_lama.fixed))
    assert with_lama.choose(None, "", erase=True) == "lama"
    assert with_lama.choose(None, "a red rose", erase=True) == "lama"  # the words: unused
    assert with_lama.choose("classical", "", erase=True) == "classical"  # a remover named
    diffusion = EngineConfig(load_diffusers=True, model=str(tiny_model), device="cpu")
    assert diffusion.choose(None, "a red rose", erase=True) == "classical"  # no LaMa here
    assert diffusion.choose(None, "a red rose") == "diffusers"  # inpaint: the model
    with pytest.raises(InvalidInput) as refused:
        diffusion.choose("diffusers", "a red rose", erase=True)
    assert refused.value.field == "mode" and "Erase mode runs a remover" in str(refused.value)


def extents_of(mask: np.ndarray, centre: tuple[int, int]) -> tuple[int, int, int, int]:
    """The first and last masked column of the row through ``centre`` (x, y), and row of its
    column."""
    columns = np.flatnonzero(mask[centre[1]])
    rows = np.flatnonzero(mask[:, centre[0]])
    return columns[0], columns[-1], rows[0], rows[-1]


def extents(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``extents_of`` through the box's middle."""
    x0, y0, x1, y1 = BOX
    return extents_of(mask, ((x0 + x1) // 2, (y0 + y1) // 2))


@pytest.mark.parametrize("dilate", [1, 6, 20])
def test_the_dilation_grows_the_mask_by_the_pixels_asked(dilate):
    mask = box_mask(*SIZE, BOX, inpaint_white=True)
    drawn = effective_mask(mask, SIZE, MaskOptions(mode="white_inpaints", blur=0)) > 0
    options = MaskOptions(mode="white_inpaints", blur=0, dilate=dilate)
    grown = effective_mask(mask, SIZE, options) > 0
    left, right, top, bottom = extents(drawn)
    assert extents(grown) == (left - dilate, right + dilate, top - dilate, bottom + dilate)
    # Erase mode's parameters give that mask; an inpaint's ignore the dilation.
    erase = GenerationParams(mode="erase", dilate_pixels=dilate, mask_blur=0)
    assert erase.mask_options.dilate == dilate
    assert GenerationParams(dilate_pixels=dilate).mask_options.dilate == 0


@pytest.mark.parametrize("engine", ["classical", "lama"])
def test_an_erase_regenerates_the_grown_mask_and_keeps_every_other_pixel(engine, tiny_lama):
    """Run as a worker runs the job: the area changed reaches past the drawn box by the
    dilation (the object's edge and shadow go), and not a pixel beyond the grown mask (and
    its feather) differs from the input."""
    config = EngineConfig(lama_model=str(tiny_lama.fixed))
    backend = get_backend(engine, config)
    image, mask = photo(), box_mask(*SIZE, BOX, inpaint_white=True)
    params = GenerationParams(seed=0, mode="erase", dilate_pixels=8, mask_mode="white_inpaints")
    request = params.with_defaults().to_request(image=image, mask=mask)
    out = np.asarray(run_inpaint(request, backend).images[0])
    original = np.asarray(image)
    regenerate = effective_mask(mask, SIZE, params.mask_options) > 0
    assert (out[~regenerate] == original[~regenerate]).all()
    changed = (out != original).any(axis=-1)
    drawn = box_mask(*SIZE, BOX, inpaint_white=True)
    inside_box = np.asarray(drawn) > 0
    ring = regenerate & ~inside_box  # the dilation's band around the drawn box
    assert changed[ring].mean() > 0.3, changed[ring].mean()


@pytest.mark.serial  # measures CPU time
def test_the_largest_growth_of_a_12_mp_mask_stays_within_its_cpu_budget():
    """mask_grow 64 and erase's dilation 100 on the largest upload's mask (12 MP), as the web
    process computes the effective mask when it checks a job: in steps (``masks.GROW_STEP``),
    about 1 CPU-s here (one round kernel of 164 px took 9.4 s)."""
    mask = Image.new("L", (4000, 3000), 0)
    mask.paste(255, (1500, 1000, 2500, 2000))
    options = MaskOptions(mode="white_inpaints", blur=0, grow=64, dilate=100)
    started = time.process_time()
    grown = effective_mask(mask, mask.size, options) > 0
    assert time.process_time() - started < 4.0
    assert extents_of(grown, (2000, 1500)) == (1500 - 164, 2499 + 164, 1000 - 164, 1999 + 164)
