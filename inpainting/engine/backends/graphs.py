"""CUDA graphs of the eager denoiser, one per working size (issue 81): one step of a UNet or
a transformer is thousands of small kernels launched from Python, and on an H100 the GPU
waits for the launches (busy 30 to 58 % of a step, docs/performance.md). A CUDA graph
records a step's kernels once and replays them with one launch: the same kernels on the
same memory, so the same picture.

- ``CUDA_GRAPH_SIZES`` (``buckets``) declares the working sizes; when a worker loads a
  model on CUDA it captures each one with a short call (``capture``), within
  ``CUDA_GRAPH_CAPTURE_SECONDS``; the sizes left when that runs out stay eager. The time is
  logged and kept (``captured``).
- A denoiser call replays a graph when one was captured for exactly its inputs (sizes,
  batch, dtypes, the prompt's length); any other call runs eager, as does a job whose
  LoRA, ControlNet, IP-Adapter or layers change the denoiser (``eager_because``).
- A capture that fails leaves that size eager and the worker running; compiled models
  (``INPAINT_COMPILE``) are not captured.

Nothing here runs on the CPU but ``eager_because`` (which says why): the capture and the
replay are measured by the GPU kit on a lent GPU.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import memory

logger = logging.getLogger(__name__)

#: How long a worker may capture graphs at a model's load (CUDA_GRAPH_CAPTURE_SECONDS).
DEFAULT_CAPTURE_SECONDS = 120.0
#: Eager calls before a capture (the allocator and cuDNN settle on the side stream first).
WARM_CALLS = 2


def not_capturable(
    *, device: str, sizes: tuple[tuple[int, int], ...], compiled: bool, plan: str | None
) -> str | None:
    """Why no graph is captured for a model at all, or None: its load captures ``sizes``.
    ``plan``: its memory plan (``engine.memory``; None: not loaded yet)."""
    if not sizes:
        return "CUDA_GRAPH_SIZES is off"
    if device != "cuda":
        return "no CUDA device: graphs are captured on CUDA only"
    if compiled:
        return "the denoiser is compiled (INPAINT_COMPILE)"
    if plan not in (None, memory.GPU):
        return f"the memory plan {plan} moves weights during a step"
    return None


def eager_because(
    *,
    device: str,
    sizes: tuple[tuple[int, int], ...],
    compiled: bool,
    plan: str | None,
    changed_by: str | None,
    size: tuple[int, int],
    captured: set[tuple[int, int]],
) -> str | None:
    """Why a job of working ``size`` runs its denoiser eager, or None: it replays a graph.
    ``changed_by``: what of the job changes the denoiser (a LoRA, ...), if anything."""
    why = not_capturable(device=device, sizes=sizes, compiled=compiled, plan=plan)
    if why:
        return why
    if changed_by:
        return f"{changed_by} changes the denoiser: no graph was captured with it"
    if size not in captured:
        return f"no graph for {size[0]}x{size[1]}"
    return None


def _key(args: tuple, kwargs: dict) -> tuple | None:
    """What a captured graph must match of a call: each tensor's shape, dtype and device and
    every other argument's value; None when an argument cannot be compared (a graph is then
    never used for it)."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs
    from torch.utils._pytree import tree_flatten  # noqa: PLC0415 - as above

    leaves, spec = tree_flatten((args, kwargs))
    parts: list[Any] = [str(spec)]
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            parts.append((tuple(leaf.shape), leaf.dtype, leaf.device))
        elif leaf is None or isinstance(leaf, bool | int | float | str):
            parts.append(leaf)
        else:
            return None
    return tuple(parts)


@dataclass
class _Graph:
    graph: Any
    inputs: list[Any]  # the static tensors each call's inputs are copied into
    output: Any


@dataclass
class Graphs:
    """A denoiser's graphs: captured in ``capturing`` calls, replayed while ``active``."""

    denoiser: Any
    pool: Any = None
    graphs: dict[tuple, _Graph] = field(default_factory=dict)
    sizes: set[tuple[int, int]] = field(default_factory=set)  # captured working sizes
    failed: dict[tuple[int, int], str] = field(default_factory=dict)
    capture_seconds: float = 0.0
    capturing: tuple[int, int] | None = None
    active: bool = False
    replays: int = 0

    def __call__(self, forward: Any, args: tuple, kwargs: dict) -> Any:
        if not (self.active or self.capturing):
            return forward(*args, **kwargs)
        key = _key(args, kwargs)
        if key is None:
            return forward(*args, **kwargs)
        if key in self.graphs:
            return self._replay(self.graphs[key], args, kwargs)
        if self.capturing is None:
            return forward(*args, **kwargs)
        return self._capture(key, forward, args, kwargs)

    def _replay(self, held: _Graph, args: tuple, kwargs: dict) -> Any:
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs
        from torch.utils._pytree import tree_flatten, tree_map  # noqa: PLC0415 - as above

        tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
        for static, given in zip(held.inputs, tensors, strict=True):
            if static.data_ptr() != given.data_ptr():
                static.copy_(given)
        held.graph.replay()
        self.replays += 1
        return tree_map(lambda x: x.clone() if isinstance(x, torch.Tensor) else x, held.output)

    def _capture(self, key: tuple, forward: Any, args: tuple, kwargs: dict) -> Any:
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs
        from torch.utils._pytree import tree_flatten, tree_unflatten  # noqa: PLC0415 - as above

        leaves, spec = tree_flatten((args, kwargs))
        statics = [x.clone() if isinstance(x, torch.Tensor) else x for x in leaves]
        static_args, static_kwargs = tree_unflatten(statics, spec)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARM_CALLS):
                forward(*static_args, **static_kwargs)
        torch.cuda.current_stream().wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = forward(*static_args, **static_kwargs)
        held = _Graph(graph, [x for x in statics if isinstance(x, torch.Tensor)], output)
        self.graphs[key] = held
        return self._replay(held, args, kwargs)


#: Each loaded pipeline's graphs (gone with the pipeline).
_GRAPHS: weakref.WeakKeyDictionary[Any, Graphs] = weakref.WeakKeyDictionary()


def graphs_of(pipe: Any) -> Graphs | None:
    return _GRAPHS.get(pipe)


def capture(
    pipe: Any,
    denoiser: Any,
    sizes: tuple[tuple[int, int], ...],
    seconds: float,
    short_call: Callable[[int, int], Any],
):
    """At a model's load on CUDA: a graph of its denoiser for each of ``sizes``, captured by
    ``short_call`` of the pipeline at that size (width, height: ``loading.short_call``), while
    ``seconds`` last; once a pipeline."""

    if pipe in _GRAPHS:
        return _GRAPHS[pipe]
    graphs = _GRAPHS[pipe] = Graphs(denoiser)
    forward = denoiser.forward
    denoiser.forward = lambda *args, **kwargs: graphs(forward, args, kwargs)
    started = time.perf_counter()
    for width, height in sizes:
        if time.perf_counter() - started > seconds:
            graphs.failed[(width, height)] = "CUDA_GRAPH_CAPTURE_SECONDS ran out"
            continue
        graphs.capturing = (width, height)
        try:
            short_call(width, height)
            graphs.sizes.add((width, height))
        except Exception as exc:  # noqa: BLE001 - that size stays eager, the worker runs on
            graphs.failed[(width, height)] = repr(exc)
            logger.warning("no CUDA graph for %sx%s: %r", width, height, exc)
        finally:
            graphs.capturing = None
    graphs.capture_seconds = time.perf_counter() - started
    logger.info(
        "CUDA graphs captured for %s in %.1f s; eager: %s",
        sorted(graphs.sizes),
        graphs.capture_seconds,
        graphs.failed or "none",
    )
    return graphs


@contextmanager
def replaying(graphs: Graphs | None, use: bool):
    """While a job's pipeline call runs: the captured graphs replayed (``use``), and how
    many calls did (``Graphs.replays``)."""
    if graphs is None:
        yield None
        return
    graphs.active, graphs.replays = use, 0
    try:
        yield graphs
    finally:
        graphs.active = False
