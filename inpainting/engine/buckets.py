"""Working sizes in buckets (issue 81): a model that runs from a CUDA graph per working size
replays it only for a size it captured, so an only-masked crop is brought to one of a few
declared sizes (the one whose aspect is nearest the crop's; the crop grows to that aspect
first, as it grows to the working aspect without buckets) instead of a size of its own.

``CUDA_GRAPH_SIZES`` declares them: empty, none (off: each crop at the working size's long
side and its own aspect, as before); ``auto``, the family's own sizes (``family_sizes``: the
common aspects at its working size); or a list, ``1024x1024,1152x896``. A whole picture is
not bucketed (it would be stretched): it runs at its own working size, from a graph only
where that is a declared size."""

from __future__ import annotations

import math

from .compose import working_dimensions

#: The aspects of a family's own sizes, square first: the ones photos and screens have.
ASPECTS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16))
#: The sides a declared size may have.
SIDE_RANGE = (64, 4096)

Size = tuple[int, int]


def family_sizes(long_side: int, multiple: int) -> tuple[Size, ...]:
    """The family's own working sizes: each of ``ASPECTS`` at its long side."""
    return tuple(working_dimensions(w, h, long_side, multiple) for w, h in ASPECTS)


def parse_sizes(text: str, long_side: int, multiple: int) -> tuple[Size, ...]:
    """The declared sizes of ``CUDA_GRAPH_SIZES`` for a model working at ``long_side`` with
    sides in multiples of ``multiple``; ``ValueError`` saying what is wrong."""
    text = text.strip().lower()
    if text in ("", "off"):
        return ()
    if text == "auto":
        return family_sizes(long_side, multiple)
    sizes: list[Size] = []
    for part in text.split(","):
        try:
            width, height = (int(side) for side in part.strip().split("x"))
        except ValueError:
            raise ValueError(
                f"CUDA_GRAPH_SIZES: {part.strip()!r} is not a size such as 1024x768."
            ) from None
        low, high = SIDE_RANGE
        if not (low <= width <= high and low <= height <= high):
            raise ValueError(f"CUDA_GRAPH_SIZES: each side must be {low} to {high}: {part!r}.")
        if width % multiple or height % multiple:
            raise ValueError(
                f"CUDA_GRAPH_SIZES: {width}x{height} is not a multiple of {multiple} on each "
                "side, which this model's latents need."
            )
        if (width, height) not in sizes:
            sizes.append((width, height))
    return tuple(sizes)


def nearest(width: int, height: int, sizes: tuple[Size, ...]) -> Size:
    """The declared size whose aspect is nearest ``width`` x ``height``'s (the first declared
    of equals: the family's own come first)."""
    aspect = math.log(width / height)
    return min(sizes, key=lambda size: abs(math.log(size[0] / size[1]) - aspect))
