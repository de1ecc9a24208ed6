"""Input modes become the right 8-bit RGB; outputs carry their parameters."""

import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from inpainting.engine import encode_png, png_with_parameters, to_rgb
from inpainting.engine.images import a1111_parameters, parse_a1111_parameters


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


def test_png_text_chunks_have_the_parameters():
    data = png_with_parameters(Image.new("RGB", (2, 2)), {"prompt": "a rose", "seed": 7})
    image = Image.open(io.BytesIO(data))
    assert json.loads(image.text["dreamlayer"]) == {"prompt": "a rose", "seed": 7}
    assert image.text["parameters"] == "a rose\nSeed: 7, Size: 2x2, Version: DreamLayer"


def test_automatic1111_readers_understand_the_parameters():
    """sd-parsers (which reads AUTOMATIC1111's PNG info as the web UI does) reads back the
    prompt with every LoRA as a tag, the negative prompt, sampler, steps, CFG, seed, size,
    model and clip skip."""
    from sd_parsers import ParserManager

    parameters = {
        "prompt": "a (red:1.3) rose, <lora:ink:0.8>",
        "negative_prompt": "blurry, dark",
        "num_inference_steps": 25,
        "scheduler": "DPM++ 2M Karras",
        "guidance_scale": 6.5,
        "seed": 1234,
        "model": "juggernaut-xl.safetensors",
        "denoising_strength": 0.75,
        "clip_skip": 2,
        "loras": [{"name": "style", "weight": 1.2}],
        "mask_blur": 4,
    }
    png = Image.open(io.BytesIO(png_with_parameters(Image.new("RGB", (96, 64)), parameters)))
    info = ParserManager().parse(png)
    assert info.generator == "AUTOMATIC1111"
    prompts = [p.value for p in info.prompts]
    assert prompts == ["a (red:1.3) rose, <lora:ink:0.8> <lora:style:1.2>"]
    assert [p.value for p in info.negative_prompts] == ["blurry, dark"]
    sampler = info.samplers[0]
    assert sampler.name == "DPM++ 2M Karras"
    assert sampler.parameters["steps"] == "25" and sampler.parameters["cfg_scale"] == "6.5"
    assert sampler.parameters["seed"] == "1234"
    assert sampler.model.name == "juggernaut-xl.safetensors"
    assert info.metadata["Size"] == "96x64" and info.metadata["Clip skip"] == "2"


def _noise(mode: str, size=(37, 23)) -> Image.Image:
    rng = np.random.default_rng(1)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16))
    bands = len(Image.new(mode, (1, 1)).getbands())
    values = rng.integers(0, 256, (*size[::-1], bands), dtype=np.uint8)
    return Image.fromarray(values.squeeze(-1) if bands == 1 else values, mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_png_keeps_every_pixel_of_the_modes_it_stores(mode):
    image = _noise(mode)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.size == image.size
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_a_flat_picture_is_stored_small():
    """Issue 52: a flat 4096 px picture was stored as a 50 MB uncompressed PNG."""
    image = Image.new("RGB", (4096, 4096), (120, 130, 140))
    data = encode_png(image)
    assert len(data) < 512 * 1024
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(image))


def test_other_modes_are_converted_and_metadata_is_dropped():
    bilevel = Image.new("1", (4, 4), 1)
    assert Image.open(io.BytesIO(encode_png(bilevel))).mode == "L"
    grey_alpha = Image.new("LA", (2, 2), (90, 40))
    out = Image.open(io.BytesIO(encode_png(grey_alpha)))
    assert out.mode == "RGBA" and out.getpixel((0, 0)) == (90, 90, 90, 40)
    tagged = Image.new("RGB", (2, 2))
    tagged.info["dpi"] = (300, 300)
    tagged.info["comment"] = "secret"
    data = encode_png(tagged)
    assert b"pHYs" not in data and b"secret" not in data and b"tEXt" not in data
    assert data.endswith(b"IEND\xaeB`\x82")


def test_a1111_infotext_is_parsed_as_a1111_parses_it():
    text = (
        "masterpiece, a cat\n"
        "on two lines\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3570474587, "
        'Size: 512x768, Model hash: 6ce0161689, Lora hashes: "add_detail: 7c6bad76eb54", '
        "Version: v1.9.4"
    )
    parsed = parse_a1111_parameters(text)
    assert parsed["Prompt"] == "masterpiece, a cat\non two lines"
    assert parsed["Negative prompt"] == "lowres, bad anatomy"
    assert (parsed["Steps"], parsed["Schedule type"], parsed["Seed"]) == (
        "20",
        "Karras",
        "3570474587",
    )
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["Lora hashes"] == "add_detail: 7c6bad76eb54"  # quoted: unquoted
    # Our own text, written and read back.
    ours = a1111_parameters(
        {"prompt": "a rose", "num_inference_steps": 4, "seed": 9, "model": "m: x"}, (96, 64)
    )
    back = parse_a1111_parameters(ours)
    assert (back["Prompt"], back["Steps"], back["Seed"], back["Model"]) == (
        "a rose",
        "4",
        "9",
        "m: x",
    )
    assert parse_a1111_parameters("just words") == {"Prompt": "just words", "Negative prompt": ""}


def test_parsing_a_huge_parameters_text_takes_one_pass():
    """png-info reads text chunks Pillow admits up to 1 MB: no line makes the parse retry
    from every character."""
    started = time.perf_counter()
    for text in ("a" * 1_000_000, "Key: " + "v" * 500_000, 'Key: "' + "x" * 500_000):
        parse_a1111_parameters(text)
    assert time.perf_counter() - started < 0.5
