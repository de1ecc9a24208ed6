"""``make load``: real client load against a running DreamLayer, with latency percentiles.

Holds SUBSCRIBERS websocket subscribers on the user's progress stream and WAITERS ``img2img``
clients that wait for their result, while a probe measures ``/api/health`` every 50 ms.

    python scripts/load.py --url http://127.0.0.1:8000 --key dl_xxxxxxxx.secret

Exits 1 unless every subscriber stayed connected and heard every job finish, every waiting
client got its image, and health answered under --max-health-ms at the 99th percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import websockets


def percentile_ms(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    if not ordered:
        return "no samples"

    def at(q: float) -> float:
        return percentile_ms(ordered, q)

    return (
        f"p50 {at(0.5):.1f} ms, p90 {at(0.9):.1f} ms, p99 {at(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms ({len(ordered)} samples)"
    )


def inputs(size: int) -> tuple[bytes, bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = Image.new("L", (size, size), 255)
    mask.paste(0, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    out = []
    for image in (Image.fromarray(pixels), mask):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out[0], out[1]


async def subscriber(
    url: str, key: str, ready: asyncio.Event, finished: dict, stop: asyncio.Event, seen: dict
):
    """One websocket on the user's stream, counting jobs it heard finish (``seen`` while it
    listens, ``finished`` once it ends still connected)."""
    ws_url = url.replace("http", "ws", 1) + "/ws/generations/"
    heard: set[str] = set()
    seen[id(ready)] = heard
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"Api-Key {key}"}, open_timeout=30
    ) as ws:
        ready.set()
        while not stop.is_set():
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            if event.get("status") in ("succeeded", "failed", "cancelled"):
                heard.add(event["id"])
        finished[id(ready)] = heard


def jobs_made(url: str, key: str) -> int:
    """How many jobs the key's user has (the history's count)."""
    headers = {"Authorization": f"Api-Key {key}"}
    return requests.get(f"{url}/api/generations/", headers=headers, timeout=10).json()["count"]


def wait_for_image(url: str, key: str, image: bytes, mask: bytes, i: int) -> tuple[int, float]:
    started = time.perf_counter()
    response = requests.post(
        f"{url}/api/img2img",
        headers={"Authorization": f"Api-Key {key}"},
        files={"image": ("in.png", image, "image/png"), "mask": ("m.png", mask, "image/png")},
        data={"prompt": f"load {i}", "seed": str(i)},
        timeout=600,
    )
    ok = response.status_code == 200 and response.json().get("status") == "success"
    return (200 if ok else response.status_code), time.perf_counter() - started


async def run(args) -> int:
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(args.subscribers)]
    heard: dict = {}
    seen: dict = {}
    subscribers = [
        asyncio.create_task(subscriber(args.url, args.key, ready, heard, stop, seen))
        for ready in readies
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print(f"{args.subscribers} websocket subscribers connected", flush=True)

    image, mask = inputs(args.size)
    loop = asyncio.get_running_loop()
    before = jobs_made(args.url, args.key)
    # One thread per waiting client and one for the probe: the probe never queues behind them.
    waiting_pool, probe_pool = ThreadPoolExecutor(args.waiters), ThreadPoolExecutor(1)
    waiters = [
        loop.run_in_executor(waiting_pool, wait_for_image, args.url, args.key, image, mask, i)
        for i in range(args.waiters)
    ]
    # Health is measured apart while the clients upload (20 bodies parsed, decoded and stored
    # at once) and once every job is made and its client waits: the target is for the waits.
    uploading: list[float] = []
    health: list[float] = []
    waiting = False
    while not all(w.done() for w in waiters):
        if uploading and not waiting:
            made = await loop.run_in_executor(probe_pool, jobs_made, args.url, args.key)
            waiting = made >= before + args.waiters
        started = time.perf_counter()
        status = await loop.run_in_executor(
            probe_pool, lambda: requests.get(f"{args.url}/api/health", timeout=10).status_code
        )
        (health if waiting else uploading).append(time.perf_counter() - started)
        if status != 200:
            print(f"health answered {status}")
            return 1
        await asyncio.sleep(0.05)
    results = [w.result() for w in waiters]
    # The last status events reach the subscribers: wait for them (at most 15 s), not a fixed
    # second (under load the last job's event once came later than that).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and min(map(len, seen.values())) < args.waiters:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*subscribers)

    ok_waiters = sum(1 for code, _ in results if code == 200)
    heard_counts = [len(h) for h in heard.values()]
    p99 = percentile_ms(health, 0.99)
    print(f"health while {args.waiters} clients upload: {percentiles(uploading)}")
    print(f"health while {args.waiters} clients wait and {args.subscribers} subscribe: "
          f"{percentiles(health)}")  # fmt: skip
    print(
        f"img2img ({ok_waiters}/{args.waiters} succeeded): {percentiles([t for _, t in results])}"
    )
    print(f"subscribers still connected at the end: {len(heard)}/{args.subscribers}; "
          f"jobs heard finishing per subscriber: min {min(heard_counts, default=0)}, "
          f"median {statistics.median(heard_counts or [0]):.0f}")  # fmt: skip
    ok = (
        ok_waiters == args.waiters
        and len(heard) == args.subscribers
        and min(heard_counts, default=0) >= args.waiters
        and bool(health)
        and p99 < args.max_health_ms
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key (manage.py create_api_key)")
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--waiters", type=int, default=20)
    parser.add_argument("--size", type=int, default=384, help="input image side in pixels")
    parser.add_argument("--max-health-ms", type=float, default=200.0)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
