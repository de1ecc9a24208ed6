"""A layered job on a real photo (scikit-image's coffee), as the native API runs it with its
defaults (seed 0): two layers drawn as a user draws them, the lower one (the saucer) under
the upper one (the spoon, which overlaps it), made into regions by the layer rules
(``engine.layers``: the upper layer keeps the overlap) and painted in turn by the engine
named (the classical engine without a model). Writes ``layers.png``: the photo, the layers as
drawn (each in its colour), the regions as painted, the result; and prints what ran.

    .venv/bin/python bench/layers.py --out docs/layers [--engine classical]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.removals import REMOVALS, drawn_mask, photo, strip  # noqa: E402
from inpainting.engine import EngineConfig, get_backend, run_inpaint  # noqa: E402
from inpainting.engine.layers import regions_for  # noqa: E402
from inpainting.engine.masks import mask_file_of  # noqa: E402
from inpainting.params import GenerationParams  # noqa: E402

#: The layers, bottom up: a name, a prompt and what the user paints (an ellipse's box, or
#: the outlines of a removal, image pixels).
SAUCER = {"name": "saucer", "prompt": "a blue porcelain saucer", "ellipse": (250, 150, 560, 400)}
SPOON = {"name": "spoon", "prompt": "a silver teaspoon", "outlines": REMOVALS["coffee"]["outlines"]}
COLOURS = [(40, 120, 255), (255, 200, 0)]


def painted(layer: dict, size: tuple[int, int]) -> np.ndarray:
    if "ellipse" in layer:
        canvas = Image.new("L", size, 0)
        ImageDraw.Draw(canvas).ellipse(layer["ellipse"], fill=255)
        return np.asarray(canvas) > 0
    return drawn_mask(size, layer["outlines"], REMOVALS["coffee"]["margin"])


def tinted(image: Image.Image, masks: list[np.ndarray]) -> Image.Image:
    """``image`` with each mask (0 to 1) over it in its colour, half opaque."""
    pixels = np.asarray(image, np.float64).copy()
    for mask, colour in zip(masks, COLOURS, strict=False):
        weight = 0.55 * np.asarray(mask, np.float64)[..., None]
        pixels = pixels * (1 - weight) + np.array(colour) * weight
    return Image.fromarray(np.rint(pixels).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/layers"))
    parser.add_argument("--engine", default="classical")
    args = parser.parse_args()
    image = photo("coffee")
    params = GenerationParams(seed=0, prompt="an espresso on a wooden table")
    drawn = [painted(layer, image.size) for layer in (SAUCER, SPOON)]
    files = [mask_file_of(mask.astype(np.float32), params.mask_options) for mask in drawn]
    params = GenerationParams(
        seed=0,
        prompt=params.prompt,
        layers=[{"name": x["name"], "prompt": x["prompt"]} for x in (SAUCER, SPOON)],
    )
    request = params.with_defaults().to_request(image=image, mask=None, layer_masks=tuple(files))
    regions = regions_for(request)
    started = time.perf_counter()
    result = run_inpaint(request, get_backend(args.engine, EngineConfig()))
    seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    figure = strip(
        {
            "photo": image,
            "layers as drawn (saucer, spoon above it)": tinted(image, drawn),
            "regions painted (the spoon keeps the overlap)": tinted(
                image, [region.mask for region in regions.regions]
            ),
            f"result ({args.engine}, {result.metadata['layered']['ran']})": result.images[0],
        },
        (200, 40, 600, 400),
    )
    figure.save(args.out / "layers.png")
    print(f"{args.engine}: {result.metadata['layered']}, {seconds:.2f} s, {regions.warnings}")


if __name__ == "__main__":
    main()
