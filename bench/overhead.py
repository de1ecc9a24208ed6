"""What the service adds around the engine: N classical jobs through the API (submit with
``wait``, the wait itself, download the PNG) against the engine's own time for the same images.

    .venv/bin/python bench/overhead.py --url http://127.0.0.1:8000 --key $KEY [--jobs 20]

Jobs run one after another, so the overhead is the service's own (upload, validation, storage,
queueing through Redis and Celery, the worker loading the files, compositing and saving the
result, the channel-layer wake-up and the download), not waiting behind other jobs.

The overhead of a job is its round trip minus the engine's own time for it, which the worker
measures around the backend call and returns in ``metadata.timings.inference``; the median over
the jobs is the figure, and the script exits 1 when it is 0.25 s or more (SPEC §8). For
reference it also times the engine in this process (``run_inpaint`` on the same image and mask,
as a worker calls it).

The target is for this machine class at its usual pace. Its pace varies from day to day (the
same engine took 1.0 s one day and 1.7 to 2.4 s on others, every time above growing with it), so
the script also times a fixed piece of work like the service's own (PNG encodes and decodes,
JSON and Python dictionaries) before and after the jobs: on a machine slower than
REFERENCE_WORK_SECONDS the target grows in proportion, at most MAX_SLOWDOWN times, and the
script prints both.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inpainting.engine import InpaintRequest, MaskOptions, run_inpaint  # noqa: E402
from inpainting.engine.backends.classical import ClassicalBackend  # noqa: E402

TARGET_SECONDS = 0.25
#: ``reference_work`` on this machine class at its usual pace (2 cores, idle, 2026-11-27:
#: 0.176 s, the engine alone 0.92 s for these jobs).
REFERENCE_WORK_SECONDS = 0.176
#: The most the target grows on a slow machine: a service twice as slow as it should be still fails.
MAX_SLOWDOWN = 2.0


def inputs(size: int) -> tuple[Image.Image, Image.Image]:
    """A textured image and a mask (black inpaints, as ``/api/img2img`` reads it) of a 5 %
    square off centre."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x * 200, y * 200, (1 - x) * 150], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, (size, size, 3)) + 20, 0, 255).astype(np.uint8)
    mask = Image.new("L", (size, size), 255)
    side = round(size * 0.05**0.5)
    mask.paste(0, (size // 3, size // 3, size // 3 + side, size // 3 + side))
    return Image.fromarray(pixels, "RGB"), mask


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def engine_seconds(image: Image.Image, mask: Image.Image, seeds: list[int]) -> list[float]:
    backend = ClassicalBackend()
    times = []
    for seed in seeds:
        request = InpaintRequest(
            image=image, mask=mask, mask_options=MaskOptions(mode="black_inpaints"), seed=seed
        )
        started = time.perf_counter()
        run_inpaint(request, backend)
        times.append(time.perf_counter() - started)
    return times


def api_seconds(
    url: str, key: str, image: bytes, mask: bytes, seeds: list[int]
) -> list[tuple[float, float]]:
    """(round trip, the job's timings: queue, inference, total) per job."""
    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {key}"
    times = []
    for seed in seeds:
        started = time.perf_counter()
        response = session.post(
            f"{url}/api/img2img",
            files={"image": ("in.png", image, "image/png"), "mask": ("m.png", mask, "image/png")},
            data={"prompt": "overhead", "seed": str(seed), "engine": "classical"},
            timeout=300,
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise SystemExit(f"job {seed} answered {response.status_code}: {body}")
        download = session.get(body["images"][0], timeout=60)
        download.raise_for_status()
        Image.open(io.BytesIO(download.content)).verify()
        times.append((time.perf_counter() - started, body["metadata"]["timings"]))
    return times


def reference_work(image: Image.Image, repeats: int = 5) -> float:
    """The median seconds of a fixed piece of work like the service's own around a job: the
    picture encoded and decoded as a PNG, a job's JSON written and read, dictionaries built."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(3):
            Image.open(io.BytesIO(png(image))).load()
        for index in range(2000):
            row = {f"field{key}": [index, key, str(key) * 3] for key in range(40)}
            json.loads(json.dumps(row))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_times() -> list[int] | None:
    """The machine's CPU counters (Linux ``/proc/stat``), for the steal share of a run."""
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_percent(before: list[int] | None, after: list[int] | None) -> float | None:
    """CPU time the hypervisor gave to other guests, in % of the machine's time (field 8)."""
    if not before or not after or len(before) < 8:
        return None
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return 100.0 * spent[7] / max(sum(spent[:8]), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    image, mask = inputs(args.size)
    seeds = list(range(1, args.jobs + 1))
    # Warm-up, not counted: imports and first-use costs on both sides.
    engine_seconds(image, mask, [0])
    api_seconds(args.url.rstrip("/"), args.key, png(image), png(mask), [0])
    engine = statistics.median(engine_seconds(image, mask, seeds))
    work_before = reference_work(image)
    counters = cpu_times()
    jobs = api_seconds(args.url.rstrip("/"), args.key, png(image), png(mask), seeds)
    steal = steal_percent(counters, cpu_times())
    work = (work_before + reference_work(image)) / 2
    slowdown = min(max(work / REFERENCE_WORK_SECONDS, 1.0), MAX_SLOWDOWN)
    target = TARGET_SECONDS * slowdown
    api = statistics.median(trip for trip, _ in jobs)
    inference = statistics.median(timings["inference"] for _, timings in jobs)
    overhead = statistics.median(trip - timings["inference"] for trip, timings in jobs)
    queue = statistics.median(timings["queue"] for _, timings in jobs)
    worker = statistics.median(
        timings["total"] - timings["inference"] - timings["queue"] for _, timings in jobs
    )
    print(f"{args.jobs} classical jobs, {args.size} x {args.size}, one at a time (medians):")
    print(f"engine alone (run_inpaint in this process)  {engine:.3f} s")
    print(f"through the API (submit, wait, download)  {api:.3f} s")
    print(f"engine time inside those jobs (worker)  {inference:.3f} s")
    print(f"of the overhead: queued {queue:.3f} s, worker around the engine {worker:.3f} s")
    if steal is not None:
        # A virtual machine's neighbours take this share of the CPU: every time above grows.
        print(f"CPU steal during the API jobs  {steal:.0f} %")
    print(
        f"the reference work  {work:.3f} s ({work / REFERENCE_WORK_SECONDS:.2f} x this machine "
        f"class's usual {REFERENCE_WORK_SECONDS} s): target {target:.3f} s"
    )
    verdict = "under" if overhead < target else "NOT under"
    print(f"overhead per job  {overhead:.3f} s ({verdict} {target:.3f} s)")
    return 0 if overhead < target else 1


if __name__ == "__main__":
    sys.exit(main())
