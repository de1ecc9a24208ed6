"""Six real removals, as a user does them: an outline drawn around the object on a real photo
(scikit-image's astronaut, coffee and rocket; the shuttle reaches the top of the frame; the
coffee's spoon, and its whole cup, a hole large enough to be filled at a reduced scale), the
shuttle again under a plain box from the top edge to the table, and a caption strip along
the bottom of the cat photo (chelsea, the caption drawn on it here), the
engine run exactly as ``POST /api/img2img`` runs it with its defaults (seed 0), the result
written as a strip: the photo, the mask drawn over it, the result; and ``feather.png``, the
feather rule zoomed.

    .venv/bin/python bench/removals.py --out docs/removals [--engine classical]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inpainting.engine import EngineConfig, effective_mask, get_backend, run_inpaint  # noqa: E402
from inpainting.params import GenerationParams  # noqa: E402

#: The outline a user draws around each object (polygons, image pixels), and the brush margin
#: the outline is drawn with: a user's stroke covers the object with a few pixels to spare.
REMOVALS = {
    "astronaut": {
        "object": "the space shuttle model",
        "outlines": [
            [
                (398, 0),
                (440, 0),
                (441, 38),
                (452, 42),
                (455, 195),
                (462, 225),
                (460, 240),
                (450, 262),
                (440, 275),
                (410, 288),
                (385, 288),
                (372, 270),
                (356, 230),
                (358, 215),
                (376, 185),
                (376, 60),
                (384, 40),
                (396, 38),
            ],
        ],
        "margin": 5,
    },
    "coffee": {
        "object": "the spoon",
        "outlines": [
            [(398, 66), (424, 64), (424, 85), (416, 110), (406, 118), (398, 100)],
            [
                (386, 190),
                (391, 200),
                (384, 230),
                (398, 250),
                (407, 270),
                (408, 295),
                (400, 316),
                (382, 327),
                (352, 327),
                (332, 314),
                (325, 292),
                (328, 268),
                (333, 258),
                (317, 252),
                (318, 240),
                (350, 236),
                (370, 232),
                (376, 210),
            ],
        ],
        "margin": 4,
    },
    "coffee-cup": {
        "photo": "coffee",
        "object": "the whole cup, handle and all (the spoon stays)",
        "outlines": [
            [
                (166, 100),
                (172, 60),
                (195, 30),
                (230, 12),
                (290, 6),
                (350, 12),
                (390, 35),
                (412, 70),
                (414, 110),
                (405, 170),
                (388, 250),
                (340, 283),
                (290, 292),
                (262, 300),
                (245, 310),
                (215, 310),
                (195, 295),
                (190, 270),
                (200, 245),
                (185, 200),
                (170, 150),
            ],
        ],
        "margin": 5,
    },
    "rocket": {
        "object": "the lightning mast on the right",
        "outlines": [
            [
                (442, 120),
                (450, 120),
                (452, 188),
                (458, 192),
                (466, 370),
                (468, 380),
                (437, 380),
                (440, 370),
                (439, 192),
                (441, 188),
            ],
        ],
        "margin": 4,
    },
    "astronaut-box": {
        "photo": "astronaut",
        "object": "the shuttle, a box from the top of the frame down to the table",
        "outlines": [[(355, 0), (470, 0), (470, 285), (355, 285)]],
        "margin": 1,
    },
    "chelsea": {
        "object": "a caption strip along the bottom of the frame",
        "caption": "Chelsea, on the sofa - 24 November 2026",
        "outlines": [[(0, 262), (450, 262), (450, 299), (0, 299)]],
        "margin": 2,
    },
}


def photo(name: str) -> Image.Image:
    """The photo of the removal ``name`` as the user has it: for a caption removal, with the
    caption on it (a dark strip across the bottom, the text in white)."""
    from skimage import data

    source = REMOVALS.get(name, {}).get("photo", name)
    image = Image.fromarray(getattr(data, source)()).convert("RGB")
    caption = REMOVALS.get(name, {}).get("caption")
    if caption:
        band = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(band)
        draw.rectangle((0, image.height - 34, image.width, image.height), fill=(20, 20, 20, 190))
        font = ImageFont.load_default(size=18)
        draw.text((12, image.height - 28), caption, fill=(255, 255, 255, 255), font=font)
        image = Image.alpha_composite(image.convert("RGBA"), band).convert("RGB")
    return image


def drawn_mask(size: tuple[int, int], outlines, margin: int) -> np.ndarray:
    """True where the user painted: the outlines filled, their edge stroked ``margin`` wide."""
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for outline in outlines:
        draw.polygon(outline, fill=255)
        draw.line([*outline, outline[0]], fill=255, width=2 * margin, joint="curve")
    return np.asarray(canvas) > 0


def remove(image: Image.Image, painted: np.ndarray, engine: str) -> tuple[Image.Image, float]:
    params = GenerationParams(seed=0)
    keep, fill = (255, 0) if params.mask_mode == "black_inpaints" else (0, 255)
    mask = Image.fromarray(np.where(painted, fill, keep).astype(np.uint8))
    started = time.perf_counter()
    result = run_inpaint(
        params.with_defaults().to_request(image=image, mask=mask),
        get_backend(engine, EngineConfig()),
    )
    return result.images[0], time.perf_counter() - started


def strip(panels: dict[str, Image.Image], crop: tuple[int, int, int, int]) -> Image.Image:
    """The panels side by side, each cropped to ``crop``, with a label above."""
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    out = Image.new("RGB", (width * len(panels), height + 20), "white")
    draw = ImageDraw.Draw(out)
    for index, (label, image) in enumerate(panels.items()):
        out.paste(image.crop(crop), (index * width, 20))
        draw.text((index * width + 6, 4), label, fill="black")
    return out


def feather_figure(path: Path, zoom: int = 6) -> None:
    """The feather rule, zoomed on the astronaut's left shuttle edge: the mask as drawn, the
    effective mask (white = regenerated: the drawn mask fully, then a fade outside it), and
    the result."""
    spec = REMOVALS["astronaut"]
    image = photo("astronaut")
    painted = drawn_mask(image.size, spec["outlines"], spec["margin"])
    params = GenerationParams(seed=0)
    keep, fill = (255, 0) if params.mask_mode == "black_inpaints" else (0, 255)
    mask = Image.fromarray(np.where(painted, fill, keep).astype(np.uint8))
    weights = effective_mask(mask, image.size, params.mask_options)
    result, _ = remove(image, painted, "classical")
    box = (348, 196, 388, 236)
    panels = {
        "drawn mask": Image.fromarray(painted.astype(np.uint8) * 255).convert("RGB"),
        f"effective mask (mask_blur {params.mask_options.blur})": Image.fromarray(weights),
        "result": result,
    }
    side = (box[2] - box[0]) * zoom
    out = Image.new("RGB", (side * len(panels), side + 20), "white")
    draw = ImageDraw.Draw(out)
    for index, (label, panel) in enumerate(panels.items()):
        crop = panel.convert("RGB").crop(box).resize((side, side), Image.Resampling.NEAREST)
        out.paste(crop, (index * side, 20))
        draw.text((index * side + 6, 4), label, fill="black")
    out.save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", default="classical")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, spec in REMOVALS.items():
        image = photo(name)
        painted = drawn_mask(image.size, spec["outlines"], spec["margin"])
        result, seconds = remove(image, painted, args.engine)
        shown = np.asarray(image).copy()
        shown[painted] = (0.45 * shown[painted] + 0.55 * np.array([255, 0, 0])).astype(np.uint8)
        ys, xs = np.nonzero(painted)
        pad = 48
        crop = (
            max(0, int(xs.min()) - pad),
            max(0, int(ys.min()) - pad),
            min(image.width, int(xs.max()) + pad),
            min(image.height, int(ys.max()) + pad),
        )
        panels = {"photo": image, "mask (drawn)": Image.fromarray(shown), "result": result}
        strip(panels, crop).save(args.out / f"{name}.png", optimize=True)
        print(f"{name}: {spec['object']}, {painted.sum()} px painted, {seconds:.2f} s")
    feather_figure(args.out / "feather.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
