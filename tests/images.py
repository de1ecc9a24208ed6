"""Small generated images and masks for the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

#: The docs' pictures (real photographs among them).
DOCS = Path(__file__).resolve().parent.parent / "docs"


def gradient(width: int = 96, height: int = 64) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 90.0),
        ],
        axis=-1,
    )
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def box_mask(
    width: int, height: int, box: tuple[int, int, int, int], *, inpaint_white: bool
) -> Image.Image:
    """A mask whose ``box`` is the area to inpaint, in the given polarity."""
    keep, fill = (0, 255) if inpaint_white else (255, 0)
    mask = Image.new("L", (width, height), keep)
    ImageDraw.Draw(mask).rectangle(box, fill=fill)
    return mask


def assert_same_image(a, b) -> None:
    """The same picture up to the CPU kernels' rounding, which differs with the batch size and
    the number of threads: at most one level in under 0.1 % of the channel values. (A batched
    job gives the picture it gives alone, to this.)"""
    difference = np.abs(np.asarray(a, int) - np.asarray(b, int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001, (
        f"{difference.max()} levels apart in {(difference > 0).mean():.3%} of the values"
    )


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return struct.pack(">I", len(payload)) + kind + payload + crc


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 65 * 8))
        + png_chunk(b"IEND", b"")
    )


def text_bomb_png(chunks: int, characters: int = 1_000_000, *, before_pixels: bool = True) -> bytes:
    """A small PNG carrying ``chunks`` compressed text chunks of ``characters`` each (each
    a few KB on the wire): the memory attack on whatever reads an image's text."""
    image = png_bytes(Image.new("RGB", (8, 8), (10, 20, 30)))
    text = b"".join(
        png_chunk(b"zTXt", b"k%d\0\0" % n + zlib.compress(b"A" * characters, 9))
        for n in range(chunks)
    )
    split = image.index(b"IDAT") - 4 if before_pixels else image.index(b"IEND") - 4
    return image[:split] + text + image[split:]


def photo_2048(name: str) -> bytes:
    """A real photograph (the docs' removal examples) at 2048 px on its longer side, with a
    camera's grain, as a phone's JPEG: what people put in the history."""
    with Image.open(DOCS / "removals" / f"{name}.png") as opened:
        picture = opened.convert("RGB")
    scale = 2048 / max(picture.size)
    picture = picture.resize(
        (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.LANCZOS
    )
    grain = np.random.default_rng(len(name)).normal(0, 4, (picture.height, picture.width, 3))
    pixels = np.clip(np.asarray(picture) + grain, 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
