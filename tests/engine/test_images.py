"""Input modes become the right 8-bit RGB; outputs carry their parameters."""

import io
import json

import numpy as np
from PIL import Image

from inpainting.engine import png_with_parameters, to_rgb


def test_palette_grayscale_and_rgb():
    rgb = Image.new("RGB", (4, 4), (10, 200, 30))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    assert to_rgb(palette).getpixel((0, 0)) == (10, 200, 30)
    assert to_rgb(Image.new("L", (4, 4), 77)).getpixel((1, 1)) == (77, 77, 77)
    assert to_rgb(Image.new("1", (4, 4), 1)).getpixel((1, 1)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], np.uint16)
    out = to_rgb(Image.fromarray(values))
    assert [out.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_alpha_is_flattened_on_white():
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (255, 0, 0, 0))
    out = to_rgb(rgba)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 0, 0) and out.getpixel((1, 0)) == (255, 255, 255)
    half = Image.new("LA", (1, 1), (0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)


def test_png_text_chunk_has_the_parameters():
    data = png_with_parameters(Image.new("RGB", (2, 2)), {"prompt": "a rose", "seed": 7})
    image = Image.open(io.BytesIO(data))
    assert json.loads(image.text["parameters"]) == {"prompt": "a rose", "seed": 7}
