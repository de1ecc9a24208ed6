"""Super-resolution models read by spandrel (issue 41): a tiny Real-ESRGAN (RealESRGAN_x4plus's
architecture and key layout, random weights) from .safetensors or a weights-only .pth is
recognised with its scale and upscales tile by tile like the whole picture at once; a file
that needs pickle, or weights of no upscaler, is refused with the reason; spandrel is imported
without leaving a stand-in torchvision behind."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from inpainting.engine import superres, upscale
from inpainting.engine.families import Unsupported
from inpainting.testing.tiny_upscaler import tiny_real_esrgan_weights, write_tiny_real_esrgan

RNG = np.random.default_rng(11)


def photo(width: int, height: int) -> Image.Image:
    """A smooth picture with detail: a gradient and noise."""
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    base = (x * 0.6 + y * 0.4) * np.ones((1, 1, 3))
    noise = RNG.normal(0, 25, (height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", ["tiny.safetensors", "tiny.pth"])
def test_a_tiny_real_esrgan_is_recognised_with_its_scale(tmp_path, name):
    path = write_tiny_real_esrgan(tmp_path / name)
    assert superres.probe(path) == superres.SuperRes("ESRGAN", 4)
    model = superres.load(path)
    out = model(torch.rand(1, 3, 12, 10))
    assert out.shape == (1, 3, 48, 40)


def test_a_file_that_needs_pickle_is_refused_with_the_reason(tmp_path):
    pickled = tmp_path / "RealESRGAN_x4plus.pth"
    # A whole module pickled, as some upscaler downloads are: loading it runs its code.
    torch.save({"model": torch.nn.Conv2d(3, 3, 1)}, pickled)
    with pytest.raises(Unsupported, match="needs pickle to load.*Convert it to .safetensors"):
        superres.probe(pickled)
    other = tmp_path / "model.ckpt"
    other.write_bytes(b"not weights")
    with pytest.raises(Unsupported, match=r"\.safetensors files, or \.pth / \.pt"):
        superres.probe(other)


def test_weights_of_no_upscaler_are_refused(tmp_path):
    path = tmp_path / "random.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(Unsupported, match="spandrel knows no architecture"):
        superres.probe(path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(Unsupported, match="not a readable .safetensors file"):
        superres.probe(broken)


def test_spandrel_leaves_no_stand_in_torchvision_behind():
    superres.spandrel()
    assert not any(name.split(".")[0] == "torchvision" for name in sys.modules)
    from transformers.utils import is_torchvision_available

    assert not is_torchvision_available()


def test_the_tiled_model_equals_the_whole_picture_away_from_the_seams(tmp_path):
    model = superres.load(write_tiny_real_esrgan(tmp_path / "tiny.safetensors"))
    image = photo(300, 200)
    whole = np.asarray(upscale.run_tiled(model, image, 4, tile=400)).astype(int)
    seen = []
    tiled = upscale.run_tiled(
        model, image, 4, tile=128, overlap=16, on_tile=lambda d, t: seen.append((d, t))
    )
    tiled = np.asarray(tiled).astype(int)
    assert tiled.shape == whole.shape == (800, 1200, 3)
    boxes = upscale.tile_boxes(300, 200, 128, 16)
    assert seen == [(i + 1, len(boxes)) for i in range(len(boxes))]
    count = np.zeros((800, 1200), int)
    for x0, y0, x1, y1 in boxes:
        count[y0 * 4 : y1 * 4, x0 * 4 : x1 * 4] += 1
    difference = np.abs(tiled - whole).max(axis=2)
    assert difference[count == 1].max() <= 1  # away from the seams' blend
    assert difference.max() <= 8
    assert whole.std() > 5  # the model makes a picture, not a flat field


def test_the_weights_are_real_esrgans_key_layout():
    names = set(tiny_real_esrgan_weights())
    assert {"conv_first.weight", "conv_body.weight", "conv_up1.weight", "conv_up2.weight"} <= names
    assert {"conv_hr.weight", "conv_last.weight", "body.0.rdb3.conv5.weight"} <= names
