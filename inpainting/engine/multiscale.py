"""A fill made small, refined a scale at a time up to the photo's own pixels.

A large hole is filled first where it has few pixels (``infill.coarse_to_fine``: its structure
from the smooth fills, its texture from PatchMatch). That fill is then brought up a scale at a
time, doubling, to the photo's own size, the multi-scale way of content-aware fill (Wexler,
Shechtman and Irani, "Space-Time Completion of Video", 2007; GIMP's Resynthesizer works at
several scales alike). Every pixel of the hole keeps a *source*: the known pixel whose
neighbourhood it copies. At the small scale the sources are found by a PatchMatch search for
the known patches nearest to the fill's (``find_sources``). At each finer scale each pixel
inherits its parent's source, twice as far off; below the photo's own size a round of
parallel PatchMatch then improves it: the pixel tries its neighbours' sources (shifted by one,
so copied regions grow unbroken) and a few near its own, keeping the one whose patch of the
photo at this scale, blurred, is nearest to the enlarged fill's patch there (the known pixels
beside the hole included). The fill at this scale is the enlarged fill plus the detail the
scale adds (the photo minus its enlarged smaller self) at each pixel's source: the scales
below keep the colours and lines; the sources give the grain, so at the photo's own size a
hole has the photo's own grain, not an enlarged small fill. At each scale the enlarged fill's
outer pixels are first bent to meet the kept ones (the step at the edge, smoothed along it,
added in full at the edge and fading inwards).

The patch compared is 5 x 5, sampled on a 3 x 3 grid (every other pixel), as 27 bytes a pixel
gathered at once from a stacked copy of the scale's picture.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import gradient

#: The patch compared: 3 x 3 samples PATCH_STEP apart (a 5 x 5 patch).
PATCH_STEP = 2
PATCH_RADIUS = PATCH_STEP
#: Patches are compared blurred by this sigma (px at their scale), both the fill's and the
#: photo's: an enlarged fill is soft, and compared sharp it would be matched to the photo's
#: smoothest parts. What is copied is sharp.
MATCH_BLUR = 1.0
#: The small fill's sources are found comparing patches blurred more: its middle comes from
#: the smooth fills, and compared less blurred the grain around (grass, gravel) lost to the
#: few smooth patches of the right colour (a washed-out patch in a lawn).
TEXTURE_BLUR = 3.0
#: Rounds of PatchMatch finding the small fill's sources, from random ones. A source tried at
#: random is taken only when its distance is under RANDOM_MARGIN of the best so far; one
#: propagated from a neighbour whenever it is nearer: copied regions stay whole.
TEXTURE_ROUNDS = 5
RANDOM_MARGIN = 0.6
#: The small fill's sources lie at most as far from the hole as the hole is deep, and at least
#: SOURCE_BAND small pixels (no distinct feature from across the picture).
SOURCE_BAND = 32
#: At each finer scale but the photo's own: one round of search, trying sources at most
#: SEARCH_RADIUS pixels from a pixel's own (halving down to 1). At the photo's own size the
#: sources stay as inherited: searched there against the enlarged fill, which is soft, the
#: smoother sources won (the coffee photo's outpainted top strip kept 0.55 of the grain beside
#: it, 0.61 without; 1.3 s of a 4.2 s removal on a 2048 px photo).
SEARCH_RADIUS = 8
#: The outer band of the fill (px at each scale) that is bent to meet the kept pixels, and
#: the sigma (px) the step at the edge is smoothed by along it (``_bend``).
SEAM_PIXELS = 6
SEAM_BLUR = 6.0
_OFFSETS = [(dy, dx) for dy in (-PATCH_STEP, 0, PATCH_STEP) for dx in (-PATCH_STEP, 0, PATCH_STEP)]
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
#: The distance of no source (an invalid one): above any real one (27 x 255^2), with room.
_FAR = 2**30
#: Pixels of the hole handled at once (bounds the memory of a gather: 27 bytes a pixel, a few
#: copies).
CHUNK = 65_536


def scales(full: tuple[int, int], small: tuple[int, int]) -> list[tuple[int, int]]:
    """The (height, width) of each scale above ``small`` up to ``full``, doubling."""
    height, width = full
    steps = int(np.ceil(np.log2(max(height / small[0], width / small[1]))))
    sizes = [
        (max(1, round(height / 2**k)), max(1, round(width / 2**k))) for k in range(steps - 1, 0, -1)
    ]
    return [size for size in sizes if size[0] > small[0] or size[1] > small[1]] + [full]


def touched(hole: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixels at ``size`` (height, width) that any pixel of ``hole`` falls in."""
    height, width = size
    if hole.shape == size:
        return hole.copy()
    resized = cv2.resize(hole.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return resized > 0


def find_sources(
    picture: np.ndarray, hole: np.ndarray, fill: np.ndarray, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of ``hole``, the (y, x) of the known pixel of ``picture`` whose patch,
    blurred, is nearest to ``fill``'s patch there (PatchMatch from random sources, among the
    known pixels at most as far from the hole as it is deep); -1 outside the hole."""
    rng = np.random.default_rng(seed)
    depth = float(cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5).max())
    level = _Level(picture, hole, rng, TEXTURE_BLUR, max(SOURCE_BAND, depth))
    source_y = np.full(hole.shape, -1, np.int32)
    source_x = np.full(hole.shape, -1, np.int32)
    source_y, source_x = level.repair(source_y, source_x)
    for _ in range(TEXTURE_ROUNDS):
        source_y, source_x = level.search(fill, source_y, source_x, max(hole.shape))
    return source_y, source_x


def refine(
    image: np.ndarray,
    hole: np.ndarray,
    small_image: np.ndarray,
    small_fill: np.ndarray,
    seed: int | None = None,
) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with its ``hole`` filled at full size, from ``small_fill``
    (a fill of ``small_image``, the photo shrunk, in which every pixel the hole touches was
    filled). Known pixels are ``image``'s own."""
    rng = np.random.default_rng(seed)
    hole = hole > 0
    level_hole = touched(hole, small_fill.shape[:2])
    estimate = small_fill.astype(np.float32)
    source_y, source_x = find_sources(small_image, level_hole, estimate, seed)
    below = small_image
    sizes = scales(hole.shape, small_fill.shape[:2])
    for index, size in enumerate(sizes):
        finest = index == len(sizes) - 1
        height, width = size
        picture = (
            image if finest else cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        )
        previous_hole = level_hole
        level_hole = hole if finest else touched(hole, size)
        source_y, source_x = _inherit(source_y, source_x, previous_hole, level_hole)
        base = cv2.resize(estimate, (width, height), interpolation=cv2.INTER_LINEAR)
        _bend(base, picture, level_hole)
        del estimate  # (memory: a float copy of the picture at each step)
        detail = picture.astype(np.float32)
        detail -= cv2.resize(below, (width, height), interpolation=cv2.INTER_LINEAR)
        below = picture
        base[~level_hole] = picture[~level_hole]
        level = _Level(picture, level_hole, rng)
        source_y, source_x = level.repair(source_y, source_x)
        if not finest:  # at full size the sources stay as inherited (SEARCH_RADIUS)
            source_y, source_x = level.search(base, source_y, source_x, SEARCH_RADIUS)
        estimate = level.vote(base, detail, source_y, source_x)
    out = image.copy()
    out[hole] = np.clip(estimate[hole] + 0.5, 0, 255).astype(np.uint8)
    return out


def _bend(base: np.ndarray, picture: np.ndarray, hole: np.ndarray) -> None:
    """Bend the enlarged fill's outer SEAM_PIXELS to meet the picture (in place). Enlarged, a
    fill made small does not meet the kept pixels exactly: on the kept side of the hole's edge
    (its 3 px beside the hole) the step between the picture and the enlarged fill there,
    smoothed along the edge (SEAM_BLUR; narrower, the photo's grain came through as streaks),
    is added to the fill's nearest pixels in full, fading to nothing SEAM_PIXELS deep."""
    hole8 = hole.astype(np.uint8)
    depth, labels = cv2.distanceTransformWithLabels(
        hole8, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    band = hole & (depth <= SEAM_PIXELS)
    if not band.any() or hole.all():
        return
    ring = ~hole & (cv2.dilate(hole8, np.ones((7, 7), np.uint8)) > 0)
    step = gradient.known_blur(picture.astype(np.float32) - base, ~ring, SEAM_BLUR)
    # Each kept pixel has its own label; a band pixel's is its nearest kept pixel's.
    kept_y, kept_x = _pixels(~hole)
    by_label = np.zeros(int(labels.max()) + 1, np.int64)
    by_label[labels[kept_y, kept_x]] = np.arange(kept_y.size)
    band_y, band_x = _pixels(band)
    nearest = by_label[labels[band_y, band_x]]
    weight = np.clip(1.0 - (depth[band_y, band_x] - 1.0) / SEAM_PIXELS, 0.0, 1.0)
    base[band_y, band_x] += weight[:, None] * step[kept_y[nearest], kept_x[nearest]]


def _inherit(
    source_y: np.ndarray, source_x: np.ndarray, coarse_hole: np.ndarray, hole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sources at the next finer scale: each pixel's parent's, twice as far off."""
    coarse_height, coarse_width = coarse_hole.shape
    height, width = hole.shape
    ys, xs = _pixels(hole)
    factor_y, factor_x = height / coarse_height, width / coarse_width
    parent_y = np.minimum((ys / factor_y).astype(np.int32), coarse_height - 1)
    parent_x = np.minimum((xs / factor_x).astype(np.int32), coarse_width - 1)
    from_y, from_x = source_y[parent_y, parent_x], source_x[parent_y, parent_x]
    found = from_y >= 0
    new_y = np.full((height, width), -1, np.int32)
    new_x = np.full((height, width), -1, np.int32)
    new_y[ys, xs] = np.where(found, ys + np.rint((from_y - parent_y) * factor_y), -1)
    new_x[ys, xs] = np.where(found, xs + np.rint((from_x - parent_x) * factor_x), -1)
    return new_y, new_x


class _Level:
    """One scale: its picture, its hole, where a source may be, and the patches to compare."""

    def __init__(
        self,
        picture: np.ndarray,
        hole: np.ndarray,
        rng: np.random.Generator,
        blur: float = MATCH_BLUR,
        band: float | None = None,
    ) -> None:
        self.blur = blur
        self.picture = picture
        self.hole = hole
        self.rng = rng
        height, width = hole.shape
        self.shape = (height, width)
        # A source's whole patch is known and inside the picture.
        reach = 2 * PATCH_RADIUS + 1
        grown = cv2.dilate(hole.astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
        valid = ~grown
        valid[:PATCH_RADIUS], valid[height - PATCH_RADIUS :] = False, False
        valid[:, :PATCH_RADIUS], valid[:, width - PATCH_RADIUS :] = False, False
        if band is not None:  # only sources this near the hole
            outside = (~hole).astype(np.uint8)
            valid &= cv2.distanceTransform(outside, cv2.DIST_L2, 5) <= band
        self.valid = valid
        self.valid_y, self.valid_x = _pixels(valid)
        self.ys, self.xs = _pixels(hole)
        self.patches = _stack(_blur(picture, blur))

    def repair(self, source_y: np.ndarray, source_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Sources that fall on no valid pixel are replaced by valid ones picked at random
        (PatchMatch's start; the search then improves them)."""
        ys, xs = self.ys, self.xs
        sy, sx = source_y[ys, xs], source_x[ys, xs]
        bad = ~self._ok(sy, sx)
        if bad.any() and self.valid_y.size:
            pick = self.rng.integers(0, self.valid_y.size, int(bad.sum()))
            sy[bad], sx[bad] = self.valid_y[pick], self.valid_x[pick]
        source_y, source_x = source_y.copy(), source_x.copy()
        source_y[ys, xs], source_x[ys, xs] = sy, sx
        return source_y, source_x

    def _ok(self, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
        height, width = self.shape
        inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
        ok = inside.copy()
        ok[inside] = self.valid[sy[inside], sx[inside]]
        return ok

    def search(
        self,
        estimate: np.ndarray,
        source_y: np.ndarray,
        source_x: np.ndarray,
        radius_limit: int = SEARCH_RADIUS,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One round of parallel PatchMatch: each pixel of the hole keeps, of its own source,
        its neighbours' (shifted by one) and a few at random near its own, the one whose patch
        is nearest to the estimate's patch around it."""
        if not self.valid_y.size:
            return source_y, source_x
        wanted = _blur(np.clip(estimate, 0, 255).astype(np.uint8), self.blur)
        new_y, new_x = source_y.copy(), source_x.copy()
        for start in range(0, self.ys.size, CHUNK):
            ys, xs = self.ys[start : start + CHUNK], self.xs[start : start + CHUNK]
            target = _gather(wanted, ys, xs)
            best_y, best_x = source_y[ys, xs], source_x[ys, xs]
            best = self._distance(target, best_y, best_x)
            candidates = []
            for dy, dx in _NEIGHBOURS:
                ny = np.clip(ys + dy, 0, self.shape[0] - 1)
                nx = np.clip(xs + dx, 0, self.shape[1] - 1)
                candidates.append((source_y[ny, nx] - dy, source_x[ny, nx] - dx))
            radius = radius_limit
            while radius >= 1:
                jitter = self.rng.integers(-radius, radius + 1, (2, ys.size))
                candidates.append((best_y + jitter[0], best_x + jitter[1]))
                radius //= 2
            for number, (cy, cx) in enumerate(candidates):
                distance = self._distance(target, cy, cx)
                if number >= len(_NEIGHBOURS):  # a random one must be clearly better
                    distance = np.where(distance < best * RANDOM_MARGIN, distance, best + 1)
                better = distance < best
                best = np.where(better, distance, best)
                best_y = np.where(better, cy, best_y)
                best_x = np.where(better, cx, best_x)
            new_y[ys, xs], new_x[ys, xs] = best_y, best_x
        return new_y, new_x

    def _distance(self, target: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
        ok = self._ok(sy, sx)
        distance = np.full(sy.size, _FAR, np.int32)
        if ok.any():
            found = self.patches[sy[ok], sx[ok]].astype(np.int32) - target[ok]
            distance[ok] = np.einsum("ij,ij->i", found, found)
        return distance

    def vote(
        self, base: np.ndarray, detail: np.ndarray, source_y: np.ndarray, source_x: np.ndarray
    ) -> np.ndarray:
        """The fill at this scale, in ``base``: at each pixel of the hole, ``base`` (the scale
        below's fill, enlarged) plus the ``detail`` this scale adds (the picture minus the
        scale below's, enlarged) at the pixel's source. The scale below keeps the colours and
        the lines; the sources give the grain, and where two neighbours copy from different
        places only their detail meets, not two colours. Known pixels are the picture's."""
        ys, xs = self.ys, self.xs
        sy, sx = source_y[ys, xs], source_x[ys, xs]
        ok = self._ok(sy, sx)
        base[ys[ok], xs[ok]] += detail[sy[ok], sx[ok]]
        return base


def _pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (y, x) of the mask's pixels, as int32 (half the memory of ``np.nonzero``'s)."""
    ys, xs = np.nonzero(mask)
    return ys.astype(np.int32), xs.astype(np.int32)


def _stack(picture: np.ndarray) -> np.ndarray:
    """Each pixel's patch (3 x 3 samples PATCH_STEP apart) as 27 bytes (replicated border)."""
    padded = cv2.copyMakeBorder(
        picture, PATCH_RADIUS, PATCH_RADIUS, PATCH_RADIUS, PATCH_RADIUS, cv2.BORDER_REPLICATE
    )
    height, width = picture.shape[:2]
    r = PATCH_RADIUS
    return np.concatenate(
        [padded[r + dy : r + dy + height, r + dx : r + dx + width] for dy, dx in _OFFSETS], axis=2
    )


def _blur(picture: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(picture, (0, 0), sigma)


def _gather(picture: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The patches (as ``_stack`` lays them out) at the given pixels only, as int32."""
    height, width = picture.shape[:2]
    parts = [
        picture[np.clip(ys + dy, 0, height - 1), np.clip(xs + dx, 0, width - 1)]
        for dy, dx in _OFFSETS
    ]
    return np.concatenate(parts, axis=1).astype(np.int32)
