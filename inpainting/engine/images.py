"""Input images of any common mode to 8-bit RGB, and PNG output with parameters."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from typing import Any

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from .parameters import FILL_ENGINES, number
from .types import RESIZE_MODES, InvalidInput, Resize

#: Key of the PNG text chunk holding the generation parameters in AUTOMATIC1111's text layout
#: (its PNG-info reader, and the tools that read A1111 images, understand it).
PARAMETERS_KEY = "parameters"
#: Key of the text chunk holding every DreamLayer parameter, as JSON.
DREAMLAYER_KEY = "dreamlayer"

#: Text Pillow reads from one PNG, in every process that imports the engine (the web process
#: reads image headers, workers decode): a chunk at most 1 MB decompressed (Pillow's own
#: default) and 4 MB for all of an image's text chunks together (Pillow admits 64 MB, which
#: a 63 KB file of compressed chunks reaches). An image over it is refused as unreadable. The
#: service's own PNGs carry a few KB; a photo's XMP rarely passes a few hundred KB.
MAX_TEXT_CHUNK = 1024 * 1024
MAX_TEXT_MEMORY = 4 * MAX_TEXT_CHUNK
PngImagePlugin.MAX_TEXT_CHUNK = MAX_TEXT_CHUNK
PngImagePlugin.MAX_TEXT_MEMORY = MAX_TEXT_MEMORY


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


#: How the PNGs the service writes are compressed: OpenCV's libpng with zlib level 1, the
#: run-length strategy and libpng's fast filter choice (none, sub, up per row). On a 512 px
#: photo that is 19 ms against Pillow's 36 ms at level 1 (whose adaptive filtering alone costs
#: about 20 ms), for a file the size of Pillow's level 6.
PNG_OPTIONS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FAST_FILTERS,
]
#: Pillow modes written as they are (16-bit grey keeps its precision); others are converted
#: first: 1 to L, LA to RGBA, P and the rest to RGB or RGBA.
_CV2_ORDER = {"L": None, "I;16": None, "RGB": [2, 1, 0], "RGBA": [2, 1, 0, 3]}


#: Two-valued masks (a selection): run-length deflate with no filter, 2 ms for 1024 x 768
#: and under a kilobyte for a smooth shape, where the general options take 14 ms.
MASK_PNG_OPTIONS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_NONE,
]


#: Modes a resize keeps as they are (a mask's alpha and grey levels carry its meaning).
_RESIZABLE = ("L", "LA", "RGB", "RGBA", "I", "F")


def resize_to(image: Image.Image, resize: Resize) -> Image.Image:
    """``image`` at ``resize.width`` x ``resize.height``, as AUTOMATIC1111 brings an image of
    another aspect ratio to the requested size: ``stretch`` (its "just resize"), ``crop``
    (scale to cover, centre crop) or ``fill`` (scale to fit, centred; the bands left over
    repeat the image's edge pixels). Lanczos, as A1111 resizes without an upscaler. An image
    and its mask resized alike stay aligned pixel for pixel."""
    if resize.mode not in RESIZE_MODES:
        raise InvalidInput(
            f"Unknown resize mode {resize.mode!r}; choose one of {RESIZE_MODES}.", field="resize"
        )
    if image.mode not in _RESIZABLE or "transparency" in image.info:
        transparent = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "L" if image.mode == "1" else "RGB")
    width, height = resize.width, resize.height
    if image.size == (width, height):
        return image.copy()
    if resize.mode == "stretch":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    # Scale to cover (crop) or to fit (fill) the target, keeping the aspect ratio; rounding
    # must not leave a pixel uncovered, nor one too many to fit.
    cover = resize.mode == "crop"
    scale = (max if cover else min)(width / image.width, height / image.height)
    scaled_w, scaled_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    bound = max if cover else min
    scaled_w, scaled_h = bound(scaled_w, width), bound(scaled_h, height)
    scaled = image.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS)
    if cover:
        left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    left, top = (width - scaled_w) // 2, (height - scaled_h) // 2
    pixels = np.asarray(scaled)
    pad = [(top, height - scaled_h - top), (left, width - scaled_w - left)]
    pad += [(0, 0)] * (pixels.ndim - 2)
    return Image.fromarray(np.pad(pixels, pad, mode="edge"), scaled.mode)


#: Formats an image may be sent back in (OpenAI's ``output_format``), with PIL's names.
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode_as(image: Image.Image, output_format: str, quality: int = 100) -> bytes:
    """``image`` as PNG (lossless; ``quality`` unused), JPEG or WebP at ``quality`` (0-100); an
    RGBA picture (a transparent result) keeps its alpha in PNG and WebP, and is flattened on
    white in JPEG."""
    picture = image if image.mode == "RGBA" and output_format != "jpeg" else to_rgb(image)
    if output_format == "png":
        return encode_png(picture)
    out = io.BytesIO()
    picture.save(out, OUTPUT_FORMATS[output_format], quality=quality)
    return out.getvalue()


#: The small pictures the pages show (history tiles, the detail page's figures, the admin):
#: at most this many pixels on their longer side (a 320 px figure on a 2x screen), as WebP at
#: THUMBNAIL_QUALITY: about 50 KB for a 2048 px photo, whose PNG is several MB.
THUMBNAIL_MAX_SIDE = 640
THUMBNAIL_QUALITY = 80
#: The history's tiles are shown at about 190 CSS px: on a 1x screen they load a thumbnail of
#: this side (a quarter of the pixels, about a third of the bytes), made from the 640 px one;
#: a sharp screen takes the 640 px one (``srcset``, docs/adr/0012).
SMALL_THUMBNAIL_SIDE = 320


def thumbnail_webp(image: Image.Image, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """``image`` shrunk to fit ``max_side`` (never enlarged) as WebP; transparency is kept (a
    mask's alpha carries its meaning), every other mode becomes RGB."""
    transparent = "A" in image.getbands() or "transparency" in image.info
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if transparent else "RGB")
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        # A box reduction to about the size, then Lanczos: 23 ms from 2048 px (50 ms for
        # Lanczos alone), 27 ms from 4096 px.
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.1)
    out = io.BytesIO()
    # libwebp's fastest method: 9 ms for a 640 px photo, 15% larger than method 4's 40 ms.
    image.save(out, "WEBP", quality=THUMBNAIL_QUALITY, method=0)
    return out.getvalue()


def encode_mask_png(values: np.ndarray) -> bytes:
    """A grayscale PNG of a uint8 H x W mask whose pixels take few values (0 and 255)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(values), MASK_PNG_OPTIONS)
    if not ok:  # pragma: no cover - a 2-D uint8 array always encodes
        raise ValueError("could not encode the mask as PNG")
    return encoded.tobytes()


def encode_png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of the pixels alone (no metadata from ``image.info``), plus ``text`` chunks."""
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode not in _CV2_ORDER:
        transparent = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
    pixels = np.asarray(image)
    order = _CV2_ORDER[image.mode]
    if order is not None:
        pixels = pixels[..., order]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels), PNG_OPTIONS)
    if not ok:  # pragma: no cover - OpenCV only fails on shapes the modes above exclude
        raise ValueError(f"could not encode a {image.mode} image as PNG")
    data = encoded.tobytes()
    if not text:
        return data
    # tEXt chunks go right after IHDR (8-byte signature + 25-byte IHDR chunk).
    chunks = b"".join(_chunk(b"tEXt", f"{k}\0{v}".encode("latin-1")) for k, v in text.items())
    return data[:33] + chunks + data[33:]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def a1111_parameters(parameters: dict[str, Any], size: tuple[int, int]) -> str:
    """``parameters`` in AUTOMATIC1111's layout: the prompt (with a ``<lora:name:weight>`` tag
    for each LoRA given in ``loras``), ``Negative prompt: …``, then one line of ``Key: value``
    pairs. What ran is what it says: after a fill engine (classical, LaMa), which follows no
    words and does no sampling, the engine and none of the sampling settings."""
    if parameters.get("engine") in FILL_ENGINES:
        pairs = {
            "Engine": parameters["engine"],
            "Seed": parameters.get("seed"),
            "Size": f"{size[0]}x{size[1]}",
            "Model": parameters.get("model"),
            "Mask blur": parameters.get("mask_blur"),
            "Version": "DreamLayer",
        }
        return _a1111_lines("", "", pairs)
    prompt = parameters.get("prompt", "")
    tags = [
        f"<lora:{lora['name']}:{number(lora['weight'])}>" for lora in parameters.get("loras") or []
    ]
    pairs = {
        "Steps": parameters.get("num_inference_steps"),
        "Sampler": parameters.get("scheduler") or parameters.get("scheduler_used"),
        "CFG scale": parameters.get("guidance_scale"),
        "Seed": parameters.get("seed"),
        "Size": f"{size[0]}x{size[1]}",
        "Model": parameters.get("model"),
        "Denoising strength": parameters.get("denoising_strength"),
        "Clip skip": parameters.get("clip_skip"),
        "Mask blur": parameters.get("mask_blur"),
        "ControlNet 0": _controlnet_text(parameters.get("controlnet")),
        "Version": "DreamLayer",
    }
    return _a1111_lines(
        " ".join([prompt, *tags]).strip(), parameters.get("negative_prompt") or "", pairs
    )


def _a1111_lines(prompt: str, negative: str, pairs: dict[str, Any]) -> str:
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    values = []
    for key, value in pairs.items():
        if value in (None, ""):
            continue
        text = number(value) if isinstance(value, float) else str(value)
        if any(c in text for c in ',:"'):
            text = json.dumps(text)  # A1111 quotes values with commas or colons
        values.append(f"{key}: {text}")
    lines.append(", ".join(values))
    return "\n".join(lines)


#: One ``Key: value`` pair of A1111's last line (a value with a comma or colon is quoted).
_PAIR = re.compile(r'\s*([\w][\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


#: The longest parameters text read (A1111's are a few hundred characters; Pillow admits 1 MB).
MAX_INFOTEXT = 64 * 1024


def _pairs(line: str) -> list[tuple[str, str]]:
    """The ``Key: value`` pairs from the start of ``line``, up to the first that is not one:
    one pass (``findall`` would retry from every character of a long line without pairs)."""
    pairs, position = [], 0
    while position < len(line):
        found = _PAIR.match(line, position)
        if found is None or found.end() == position:
            break
        pairs.append(found.groups())
        position = found.end()
    return pairs


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """``a1111_parameters``' text (or any A1111 image's) back as A1111's PNG-info reader gives
    it: ``Prompt``, ``Negative prompt`` and each ``Key: value`` of the last line, a size also
    as ``Size-1`` and ``Size-2``. Values are strings, quoted ones unquoted."""
    lines = text[:MAX_INFOTEXT].strip().split("\n")
    pairs = _pairs(lines[-1])
    if len(pairs) >= 3:  # A1111's own test for a settings line
        lines = lines[:-1]
    else:
        pairs = []
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    result = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in pairs:
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) > 1:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        result[key.strip()] = value
        size = re.fullmatch(r"(\d+)x(\d+)", value) if key.strip() == "Size" else None
        if size:
            result["Size-1"], result["Size-2"] = size.groups()
    return result


def _controlnet_text(controlnet: dict | None) -> str | None:
    """A1111's ControlNet extension layout: ``Module: …, Model: …, Weight: …, …``."""
    if not controlnet:
        return None
    return (
        f"Module: inpaint_only, Model: {controlnet['name']}, "
        f"Weight: {number(controlnet['conditioning_scale'])}, "
        f"Guidance Start: {number(controlnet['guidance_start'])}, "
        f"Guidance End: {number(controlnet['guidance_end'])}"
    )


def png_with_parameters(image: Image.Image, parameters: dict[str, Any] | None = None) -> bytes:
    """PNG bytes with the job's ``parameters``: in AUTOMATIC1111's text layout (``parameters``
    chunk) and every one of them as JSON (``dreamlayer`` chunk). PNG text chunks are Latin-1,
    so the text goes in with non-Latin-1 characters escaped (``json.dumps`` escapes them)."""
    text = None
    if parameters:
        a1111 = a1111_parameters(parameters, image.size)
        text = {
            PARAMETERS_KEY: a1111.encode("latin-1", "backslashreplace").decode("latin-1"),
            DREAMLAYER_KEY: json.dumps(parameters, sort_keys=True, default=str),
        }
    return encode_png(image, text)
