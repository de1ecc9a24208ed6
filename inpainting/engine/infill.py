"""Filling holes with no model.

``hybrid`` (the default) takes each classical method where it is strong: the structure from
smooth fills (biharmonic and Navier-Stokes, averaged), the texture from PatchMatch, and the
seam from a gradient-domain (Poisson) solve that fades PatchMatch's detail in over the first
pixels inside the hole, so the boundary does not show. A part of the hole that reaches the
image's frame has no far side: the biharmonic fill extrapolates there (its slopes carry on past
the known pixels: a corner hole came out 31 Lab units off), so the harmonic fill, which only
interpolates, takes its place, and PatchMatch gives detail but no structure.

``patchmatch``, ``telea`` and ``ns`` are the single methods (pypatchmatch, OpenCV Telea,
OpenCV Navier-Stokes). ``extend`` fills an
outpaint's new area, where nothing is known beyond the hole (see its docstring).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from . import gradient
from .types import EngineError

METHODS = ("hybrid", "patchmatch", "telea", "ns")
#: Gaussian sigma (px) splitting structure (below) from texture (above).
DETAIL_SIGMA = 3.0
#: PatchMatch's detail fades in from the hole's edge over this many pixels.
SEAM_PIXELS = 3.0
#: Deeper than PATCH_STRUCTURE_FROM px into a hole, PatchMatch's share of the structure grows
#: over 12 px to PATCH_STRUCTURE (the rest from the smooth fills).
PATCH_STRUCTURE = 0.4
PATCH_STRUCTURE_FROM = 6.0
#: The structure is low-frequency: it is solved at a scale where the hole has at most this
#: many pixels, then scaled back up.
STRUCTURE_MAX_HOLE_PIXELS = 40_000
#: Above this many hole pixels the full-resolution Poisson solve would take too long (about
#: 3.5 s here at the limit): ``hybrid`` returns plain PatchMatch instead. Only-masked cropping
#: keeps ordinary holes far below it.
HYBRID_MAX_HOLE_PIXELS = 400_000
#: A fill made at a reduced scale gets back the detail the reduction by a factor took: the
#: photo minus its blur of sigma DETAIL_SCALE x the factor (``enlarge``).
DETAIL_SCALE = 0.5
#: ``enlarge`` finds where each small filled pixel came from by its (2 x MATCH_RADIUS + 1)^2
#: patch, reduced to MATCH_COMPONENTS principal components (fitted on MATCH_SAMPLE patches),
#: among at most MATCH_CANDIDATES known small pixels, by a k-d tree whose answer may be up to
#: (1 + MATCH_EPS) times farther than the nearest (exact search took 5.7 s; this 0.8 s).
MATCH_RADIUS = 2
MATCH_COMPONENTS = 8
MATCH_SAMPLE = 5000
MATCH_CANDIDATES = 150_000
MATCH_EPS = 1.0
#: ``extend`` copies from the known pixels at most as far from the hole as the hole is deep,
#: within these bounds: at least EXTEND_MIN_BAND (a narrow strip has texture to copy), at
#: most EXTEND_MAX_BAND. Deeper sources reach the photo's subject: chelsea outpainted 256 px
#: to the right had the cat's eye, brow and ear copied into the new strip (the eye's normalised
#: cross-correlation with the strip 0.87; 0.45 with the bound).
EXTEND_MIN_BAND = 32
EXTEND_MAX_BAND = 64


def fill(
    image: np.ndarray,
    hole: np.ndarray,
    method: str = "hybrid",
    patch_size: int = 5,
    seed: int | None = None,
    core: np.ndarray | None = None,
) -> np.ndarray:
    """``image`` H x W x 3 uint8 with the ``hole`` (H x W, non-zero = fill) filled in.

    ``seed`` makes PatchMatch's random search reproducible (``hybrid`` and ``patchmatch``).
    ``core`` (boolean, within the hole) is what the user's mask selects fully; the rest of the
    hole is the feather band outside it, which the result is blended over. ``hybrid`` fades
    PatchMatch's texture in from the core's edge, so the band and the mask's edge get the
    smooth structure and meet the kept pixels without a seam. None: the whole hole.
    """
    if method not in METHODS:
        raise EngineError(f"Unknown fill method {method!r}; choose one of {METHODS}.")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    hole = np.ascontiguousarray(np.where(hole > 0, 255, 0), dtype=np.uint8)
    if not hole.any():
        return image.copy()
    gradient.check_fillable(hole)
    if method in ("telea", "ns"):
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(image, hole, 5, flag)
    texture = patchmatch(image, hole, patch_size, seed)
    if method == "patchmatch" or np.count_nonzero(hole) > HYBRID_MAX_HOLE_PIXELS:
        return texture
    return hybrid(image, hole > 0, texture, core)


def extend(
    image: np.ndarray, hole: np.ndarray, patch_size: int = 5, seed: int | None = None
) -> np.ndarray:
    """Outpainting: ``image`` with the ``hole`` (an outpaint's new area beside the image's old
    border, H x W, non-zero = fill) filled by continuing the picture.

    ``hybrid`` takes its structure from smooth fills, which interpolate between the known
    pixels around a hole. Beside an outpaint's new area nothing is known on the far side, so
    they extrapolate: the border's last pixels are smeared into streaks across the strip and
    their colour drifts. Here the whole fill is PatchMatch's: texture and colour copied from
    the band of known pixels beside the hole, as deep as the hole within bounds (what lies
    near the border continues, not what lies across the picture); then a Poisson solve guided
    by the fill's own Laplacian bends its low frequencies to meet the kept pixels without a
    step. The band is at most EXTEND_MAX_BAND deep, so what continues is the background at the
    border, and no distinct feature of the photo (an eye, a face) is repeated in the new area.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    hole = hole > 0
    if not hole.any():
        return image.copy()
    gradient.check_fillable(hole)
    hole8 = hole.astype(np.uint8) * 255
    depth = float(cv2.distanceTransform(hole8, cv2.DIST_L2, 5).max())
    from_hole = cv2.distanceTransform(255 - hole8, cv2.DIST_L2, 5)
    band = max(EXTEND_MIN_BAND, min(depth, EXTEND_MAX_BAND))
    far = from_hole > band  # known pixels beyond the band: no source
    texture = patchmatch(image, hole8, patch_size, seed, far.astype(np.uint8) * 255)
    if np.count_nonzero(hole) > HYBRID_MAX_HOLE_PIXELS:
        return texture
    filled = gradient.poisson(image.astype(np.float32), hole, gradient.laplacian(texture))
    return np.clip(filled + 0.5, 0, 255).astype(np.uint8)


def patchmatch(
    image: np.ndarray,
    hole: np.ndarray,
    patch_size: int,
    seed: int | None,
    unused: np.ndarray | None = None,
) -> np.ndarray:
    """PatchMatch's fill of ``hole``; known pixels where ``unused`` is non-zero are no source."""
    # PyPatchMatch builds and loads its C library on first import: only when a fill needs it.
    from patchmatch import patch_match  # noqa: PLC0415

    if not patch_match.patchmatch_available:
        raise EngineError("PatchMatch is not available on this machine.")
    if seed is not None:
        patch_match.set_random_seed(seed % 2**31)
    return np.asarray(
        patch_match.inpaint(image, hole, global_mask=unused, patch_size=patch_size), np.uint8
    )


def hybrid(
    image: np.ndarray, hole: np.ndarray, texture: np.ndarray, core: np.ndarray | None = None
) -> np.ndarray:
    """Structure from the smooth fills, texture from ``texture``, blended in the gradient domain;
    the texture fades in from the edge of ``core`` (default: the hole)."""
    known = image.astype(np.float32)
    hole8 = hole.astype(np.uint8) * 255
    structure = smooth_structure(image, hole)
    texture = texture.astype(np.float32)
    detail = texture - cv2.GaussianBlur(texture, (0, 0), DETAIL_SIGMA)
    # Deep inside a large hole a smooth fill is a smear that carries the colours where the
    # removed object crossed the boundary into the middle (a dark cone from a table under it);
    # there part of the structure comes from PatchMatch, which continues what is around.
    depth_in_hole = cv2.distanceTransform(hole8, cv2.DIST_L2, 5)
    # Not in a part of the hole that reaches the frame: there PatchMatch has no far side to
    # continue towards and copies whatever the crop holds (a face, a flag) into the middle.
    share = PATCH_STRUCTURE * np.clip((depth_in_hole - PATCH_STRUCTURE_FROM) / 12.0, 0.0, 1.0)
    share[touching_frame(hole)] = 0.0
    structure = (1.0 - share[..., None]) * structure + share[..., None] * texture
    # 0 on the core's outermost pixels (and in the band around it), 1 from SEAM_PIXELS further in.
    inner = hole8 if core is None else (core & hole).astype(np.uint8) * 255
    depth = cv2.distanceTransform(inner, cv2.DIST_L2, 5)
    fade = np.clip((depth - 1.0) / SEAM_PIXELS, 0.0, 1.0)[..., None]
    guide = gradient.laplacian(cv2.GaussianBlur(structure, (0, 0), DETAIL_SIGMA))
    guide += fade * gradient.laplacian(detail)
    filled = gradient.poisson(known, hole, guide)
    return np.clip(filled + 0.5, 0, 255).astype(np.uint8)


def structure_scale(hole: np.ndarray) -> tuple[float, np.ndarray]:
    """The scale the smooth fills are solved at, and the hole there (any pixel the hole
    touches stays in it), with at most STRUCTURE_MAX_HOLE_PIXELS unknowns. A fragmented hole
    (a speckled selection) touches far more small pixels than its area says, so the scale is
    lowered until the small hole itself is within the limit: the sparse solve's cost grows
    faster than its unknowns (a thousand specks at 400 x 300 once took minutes)."""
    height, width = hole.shape
    scale = min(1.0, (STRUCTURE_MAX_HOLE_PIXELS / np.count_nonzero(hole)) ** 0.5)
    while True:
        if scale >= 1.0:
            return 1.0, hole
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(hole.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        count = np.count_nonzero(small)
        if count <= STRUCTURE_MAX_HOLE_PIXELS or min(size) == 1:
            return scale, small
        scale *= (STRUCTURE_MAX_HOLE_PIXELS / count) ** 0.5 * 0.98


def smooth_structure(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The mean of the biharmonic and Navier-Stokes fills, solved at a reduced scale when the
    hole is large (float32, the known pixels unchanged)."""
    height, width = hole.shape
    scale, small_hole = structure_scale(hole)
    small_image = image
    if scale < 1.0:
        size = small_hole.shape[::-1]
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    known = small_image.astype(np.float32)
    at_frame = touching_frame(small_hole)
    if at_frame.all():
        smooth = 0.5 * gradient.poisson(known, small_hole, np.zeros_like(known))
    else:
        smooth = 0.5 * gradient.biharmonic(known, small_hole)
        if at_frame.any():
            harmonic = gradient.poisson(known, small_hole, np.zeros_like(known))
            smooth = np.where(at_frame[..., None], 0.5 * harmonic, smooth)
    smooth += 0.5 * cv2.inpaint(small_image, small_hole.astype(np.uint8) * 255, 5, cv2.INPAINT_NS)
    smooth = smooth.astype(np.float32)
    if scale < 1.0:
        smooth = cv2.resize(smooth, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.where(hole[..., None], smooth, image.astype(np.float32))


def touching_frame(hole: np.ndarray) -> np.ndarray:
    """The hole's pixels whose part of the hole (8-connected) reaches the image's frame."""
    count, labels = cv2.connectedComponents(hole.astype(np.uint8), connectivity=8)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.unique(edge[edge > 0])
    return np.isin(labels, touching) if touching.size else np.zeros(hole.shape, bool)


def enlarge(
    image: np.ndarray, hole: np.ndarray, small_image: np.ndarray, small_fill: np.ndarray
) -> np.ndarray:
    """A fill made at a reduced scale brought back to ``image``'s size with the photo's own
    grain: coarse to fine.

    ``small_fill`` fills ``small_image``, a reduced copy of ``image`` in which every pixel
    that touches the ``hole`` was filled. Enlarged alone it is a soft slab: the reduction took
    the grain a fill at full size would have copied. So each filled small pixel is matched to
    the known small patch nearest to it (where PatchMatch copied it from, near enough), and the
    full-size pixels under it take, on top of the enlarged fill, the fine detail (what a blur
    at the reduction's scale removes) of the full-size pixels at the same place under that
    source. The known pixels are ``image``'s own.
    """
    height, width = hole.shape
    small_height, small_width = small_fill.shape[:2]
    hole = hole > 0
    factor_y, factor_x = height / small_height, width / small_width
    pixels = image.astype(np.float32)
    detail = pixels - cv2.GaussianBlur(pixels, (0, 0), DETAIL_SCALE * factor_x)
    base = cv2.resize(small_fill, (width, height), interpolation=cv2.INTER_CUBIC)
    source_y, source_x = nearest_sources(small_image, small_fill, hole)
    ys, xs = np.nonzero(hole)
    # Each pixel takes the detail its four nearest small pixels' sources give it, weighed as a
    # bilinear enlargement weighs them: where the neighbours copied from one place the grain
    # carries on unbroken; where they did not, one fades into the other (no blocks).
    at_y = np.clip((ys + 0.5) / factor_y - 0.5, 0, small_height - 1)
    at_x = np.clip((xs + 0.5) / factor_x - 0.5, 0, small_width - 1)
    top, left = np.floor(at_y).astype(np.int64), np.floor(at_x).astype(np.int64)
    rows = ((top, 1 - (at_y - top)), (np.minimum(top + 1, small_height - 1), at_y - top))
    columns = ((left, 1 - (at_x - left)), (np.minimum(left + 1, small_width - 1), at_x - left))
    total = np.zeros((ys.size, 3), np.float32)
    weights = np.zeros(ys.size, np.float32)
    for small_y, weight_y in rows:
        for small_x, weight_x in columns:
            from_y, from_x = source_y[small_y, small_x], source_x[small_y, small_x]
            target_y = ys + np.rint((from_y - small_y) * factor_y).astype(np.int64)
            target_x = xs + np.rint((from_x - small_x) * factor_x).astype(np.int64)
            found = (from_y >= 0) & (target_y >= 0) & (target_y < height)
            found &= (target_x >= 0) & (target_x < width)
            target_y, target_x = np.where(found, target_y, 0), np.where(found, target_x, 0)
            found &= ~hole[target_y, target_x]  # never the detail of what is being removed
            weight = np.where(found, weight_y * weight_x, 0).astype(np.float32)
            total += weight[:, None] * detail[target_y, target_x]
            weights += weight
    out = pixels
    out[ys, xs] = base[ys, xs] + total / np.maximum(weights, 1e-6)[:, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def nearest_sources(
    small_image: np.ndarray, small_fill: np.ndarray, hole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each small pixel that touches the full-size ``hole``, the (y, x) of the known small
    pixel whose patch in ``small_image`` is nearest to the fill's patch there (principal
    components and a k-d tree, approximate); -1 elsewhere and where nothing is known."""
    small_height, small_width = small_fill.shape[:2]
    touched = (
        cv2.resize(
            hole.astype(np.float32), (small_width, small_height), interpolation=cv2.INTER_AREA
        )
        > 0
    )
    radius = MATCH_RADIUS
    side = 2 * radius + 1
    # Candidates: small pixels whose whole patch is known and inside the picture.
    whole = cv2.dilate(touched.astype(np.uint8), np.ones((side, side), np.uint8)) == 0
    whole[:radius], whole[small_height - radius :] = False, False
    whole[:, :radius], whole[:, small_width - radius :] = False, False
    known_y, known_x = np.nonzero(whole)
    if known_y.size > MATCH_CANDIDATES:
        keep = np.random.default_rng(0).choice(known_y.size, MATCH_CANDIDATES, replace=False)
        known_y, known_x = known_y[keep], known_x[keep]
    source_y = np.full((small_height, small_width), -1, np.int64)
    source_x = np.full((small_height, small_width), -1, np.int64)
    filled_y, filled_x = np.nonzero(touched)
    if known_y.size == 0 or filled_y.size == 0:
        return source_y, source_x
    known = _patches(small_image, known_y, known_x)
    wanted = _patches(small_fill, filled_y, filled_x)
    mean = known.mean(axis=0)
    sample = known[:: max(1, known.shape[0] // MATCH_SAMPLE)] - mean
    basis = np.linalg.svd(sample, full_matrices=False)[2][:MATCH_COMPONENTS].T
    tree = cKDTree((known - mean) @ basis)
    _, index = tree.query((wanted - mean) @ basis, k=1, eps=MATCH_EPS, workers=-1)
    source_y[filled_y, filled_x] = known_y[index]
    source_x[filled_y, filled_x] = known_x[index]
    return source_y, source_x


def _patches(pixels: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The (2 MATCH_RADIUS + 1)^2 x 3 values of the patch around each (y, x), one row each."""
    radius = MATCH_RADIUS
    padded = cv2.copyMakeBorder(
        pixels.astype(np.float32), radius, radius, radius, radius, cv2.BORDER_REFLECT
    )
    side = 2 * radius + 1
    return np.concatenate(
        [padded[ys + dy, xs + dx] for dy in range(side) for dx in range(side)], axis=1
    )
