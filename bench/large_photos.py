"""Object removal on large photos, as users run it: engine time and peak memory.

    .venv/bin/python bench/large_photos.py [--out docs/large]

Three cases, each run by the classical engine exactly as ``POST /api/img2img`` runs it with
its defaults (the mask as a file in the API's polarity, ``GenerationParams()``, seed fixed to 0):

- ``astronaut-2048``: scikit-image's astronaut brought to 2048 x 2048 (Lanczos), a box over the
  shuttle from the top edge down to the table (x 1420-1880, y 0-1140: 12.5 % of the photo);
- ``coffee-cup-2048``: scikit-image's coffee brought to 2048 x 1365, the whole cup under the
  outline ``bench/removals.py`` draws around it, enlarged with the photo (about 29 %);
- ``coffee-4000x3000``: scikit-image's coffee brought to 4000 x 3000, the size of a 12 MP phone
  photo, a box over the spoon and the saucer around it (10.1 % of the photo).

Each hole is far larger than what PatchMatch fills in time, so each is filled first at a
reduced scale and then refined a scale at a time up to the photo's own pixels
(``infill.coarse_to_fine``, ``multiscale.refine``): the table's texture figure
(``bench/classical_quality.py``'s: the mean |Laplacian| inside the hole over that in the band
around it; 1 is the photo's own grain, far under 1 a smooth slab) says whether the photo's
grain is there. Target 0.8-1.2. Its seam figure is the mean |Laplacian| on the hole's inner
edge.

Each case runs in a fresh process of its own, so that its peak memory is its own: the worker's
(``VmHWM``: the image, the mask, the crop and the composite) and the fill helper's (the fill
itself, ``inpainting.engine.isolated``). It prints the engine time (``run_inpaint``: crop,
fill, composite), the backend's own share of it (the fill, coarse to fine), the size the fill
ran at (the crop's own), the peak memory of both processes, and checks that every pixel
outside the effective mask is the photo's own. Targets (issues 34 and 77): at most 5 s for the
2048 px case with a 12.5 % hole, 8 s for the cup (a hole twice that size) and 10 s for the
4000 x 3000 case with a 10 % hole on the 2-core development machine, under 1 GB in all (1.25 GB
for the 12 MP photo: MEMORY_TARGET_MB). The job is timed after one small warm-up job, as in a
worker that has served one: the fill helper a worker starts with it has imported the engine
and PatchMatch by then (a second or two, once).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.classical_quality import mask_file, scores  # noqa: E402
from bench.removals import REMOVALS, drawn_mask  # noqa: E402
from inpainting.engine import EngineConfig, effective_mask, get_backend, run_inpaint  # noqa: E402
from inpainting.params import GenerationParams  # noqa: E402

#: name: (scikit-image photo, size, the hole: a box x0, y0, x1, y1 or a removal of
#: ``bench/removals.py`` drawn at the photo's new size, target seconds)
CASES = {
    "astronaut-2048": ("astronaut", (2048, 2048), (1420, 0, 1880, 1140), 5.0),
    "coffee-cup-2048": ("coffee", (2048, 1365), "coffee-cup", 8.0),
    "coffee-4000x3000": ("coffee", (4000, 3000), (1900, 1500, 3000, 2600), 10.0),
}
#: Worker and fill helper together. The 12 MP photo's budget is larger: its 10 % hole (issue
#: 77; 5 % before) is filled at the photo's own resolution from a crop of 2.7 MP, where the
#: helper keeps the crop's patches (27 bytes a pixel) and a few float copies (12 bytes a pixel),
#: and the worker holds the 12 MP photo, its mask and its composite (about 730 MB alone).
MEMORY_TARGET_MB = {"astronaut-2048": 1024, "coffee-cup-2048": 1024, "coffee-4000x3000": 1280}
TEXTURE_TARGET = (0.8, 1.2)


def photo(name: str) -> tuple[Image.Image, np.ndarray]:
    """The case's photo at its size and its hole (True = remove)."""
    from skimage import data

    source, size, drawn, _ = CASES[name]
    pixels = getattr(data, source)()[..., :3]
    image = Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS)
    if isinstance(drawn, str):  # a removal's outline, enlarged with the photo
        scale = size[0] / pixels.shape[1]
        spec = REMOVALS[drawn]
        outlines = [[(x * scale, y * scale) for x, y in line] for line in spec["outlines"]]
        return image, drawn_mask(size, outlines, round(spec["margin"] * scale))
    x0, y0, x1, y1 = drawn
    hole = np.zeros((size[1], size[0]), bool)
    hole[y0:y1, x0:x1] = True
    return image, hole


def warm_up(backend) -> None:
    """One small job, so that the fill helper has imported what it fills with."""
    image = Image.new("RGB", (96, 96), (120, 110, 100))
    hole = np.zeros((96, 96), bool)
    hole[32:64, 32:64] = True
    params = GenerationParams(seed=0)
    request = params.with_defaults().to_request(image=image, mask=mask_file(hole, params))
    run_inpaint(request, backend)


def peak_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a live process, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: this measure needs Linux")


def run_case(name: str, out: Path | None) -> dict:
    """One case in this process: the job at the defaults, timed and checked."""
    image, hole = photo(name)
    params = GenerationParams(seed=0)
    mask = mask_file(hole, params)
    request = params.with_defaults().to_request(image=image, mask=mask)
    backend = get_backend("classical", EngineConfig())
    warm_up(backend)
    started = time.perf_counter()
    result = run_inpaint(request, backend)
    seconds = time.perf_counter() - started
    left, top, right, bottom = result.metadata.get("crop", (0, 0, *image.size))
    output = np.asarray(result.images[0].convert("RGB"))
    weights = effective_mask(mask, image.size, params.mask_options)
    kept = weights == 0
    helpers = psutil.Process().children()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        result.images[0].save(out / f"{name}.png")
    quality = scores(np.asarray(image), output, hole)
    return {
        "case": name,
        "size": list(image.size),
        "hole_share": round(float(hole.mean()), 4),
        "engine_seconds": round(seconds, 2),
        "backend_seconds": round(result.inference_seconds, 2),
        "working_size": result.metadata["working_size"],
        "crop_size": [right - left, bottom - top],
        "texture": round(quality["texture"], 2),
        "seam": round(quality["seam"], 2),
        "worker_peak_mb": round(peak_mb(psutil.Process().pid)),
        "helper_peak_mb": round(sum(peak_mb(helper.pid) for helper in helpers)),
        "outside_unchanged": bool((output[kept] == np.asarray(image)[kept]).all()),
    }


def verdict(row: dict) -> list[str]:
    target = CASES[row["case"]][3]
    failures = []
    if row["engine_seconds"] > target:
        failures.append(f"{row['case']}: {row['engine_seconds']} s is over {target} s")
    memory = row["worker_peak_mb"] + row["helper_peak_mb"]
    if memory > MEMORY_TARGET_MB[row["case"]]:
        limit = MEMORY_TARGET_MB[row["case"]]
        failures.append(f"{row['case']}: {memory} MB is over {limit} MB")
    low, high = TEXTURE_TARGET
    if not low <= row["texture"] <= high:
        failures.append(f"{row['case']}: texture {row['texture']} is outside {low}-{high}")
    if not row["outside_unchanged"]:
        failures.append(f"{row['case']}: a pixel outside the effective mask changed")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write each result PNG to this folder")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one case, as JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.out)))
        return 0
    print(
        "| case | hole | engine s | of it the fill | fill ran at | texture | seam "
        "| worker peak MB | helper peak MB | outside the mask |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    failures = []
    for name in CASES:
        command = [sys.executable, __file__, "--case", name]
        if args.out:
            command += ["--out", str(args.out)]
        answer = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(answer.stdout.strip().splitlines()[-1])
        width, height = row["working_size"]
        print(
            f"| {name} | {row['hole_share']:.1%} | {row['engine_seconds']:.2f} "
            f"| {row['backend_seconds']:.2f} | {width} x {height} | {row['texture']:.2f} "
            f"| {row['seam']:.2f} | {row['worker_peak_mb']} "
            f"| {row['helper_peak_mb']} "
            f"| {'unchanged' if row['outside_unchanged'] else 'CHANGED'} |"
        )
        failures += verdict(row)
    print("\ntargets met" if not failures else "\ntargets missed: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
