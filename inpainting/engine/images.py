"""Input images of any common mode to 8-bit RGB, and PNG output with parameters."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

#: Key of the PNG text chunk holding the generation parameters (as A1111 does).
PARAMETERS_KEY = "parameters"


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """8-bit RGB: 16-bit and float scaled (not clipped), transparency flattened on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" or (image.mode in ("L", "RGB") and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


#: zlib level for every PNG the service writes: level 1 encodes a 512 px photo about 3x faster
#: than Pillow's default 6 (20 ms against 69 ms here) for files about 10 % larger.
PNG_COMPRESS_LEVEL = 1


def png_with_parameters(image: Image.Image, parameters: dict[str, Any] | None = None) -> bytes:
    """PNG bytes; ``parameters`` go into a text chunk as JSON."""
    info = None
    if parameters:
        info = PngImagePlugin.PngInfo()
        info.add_text(PARAMETERS_KEY, json.dumps(parameters, sort_keys=True, default=str))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()
