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

from . import gradient, multiscale
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
#: The biharmonic fill reads the known pixels blurred by this sigma (px, at its scale): it
#: carries the slopes at the hole's edge into the hole, and the grain's slopes threw it far
#: off (grass of mean 118 filled at 161). The harmonic fill only interpolates: it reads them
#: as they are (blurred, the seam of holes at the frame rose from 6.7 to 10.2).
STRUCTURE_SIGMA = 3.0
#: Above this many hole pixels the full-resolution Poisson solve would take too long (about
#: 3.5 s here at the limit): ``hybrid`` returns plain PatchMatch instead. Only-masked cropping
#: keeps ordinary holes far below it.
HYBRID_MAX_HOLE_PIXELS = 400_000
#: ``hybrid`` fills a hole of more than FULL_SIZE_HOLE_PIXELS (or in a picture of more than
#: FULL_SIZE_PIXELS) where it has no more, then refines that fill a scale at a time up to the
#: photo's own pixels (``coarse_to_fine``). PatchMatch's time grows with both: about 35 us a
#: hole pixel and 1 us a picture pixel on this 2-core machine (a 12 % hole in a 2048 px photo
#: took 33 s at full size). A fill's picture is shrunk to LEAST_SHRINK of its size or less,
#: or not at all (here and in the runner): resampled down and up again it loses its finest
#: texture (a 128 px outpaint strip shrunk to 0.94 kept half of it), which a slight shrink
#: does not buy back in time.
FULL_SIZE_HOLE_PIXELS = 12_000
FULL_SIZE_PIXELS = 1_000_000
#: An outpaint's new area (``extend``: PatchMatch alone, no structure solves) starts from up
#: to this many pixels: its texture is all PatchMatch's, and from 12,000 the top strip of the
#: coffee photo kept 0.59 of the grain beside it (0.64 filled at 30,000, and 0.6 wanted).
EXTEND_HOLE_PIXELS = 12_000
LEAST_SHRINK = 0.75
#: The patch side PatchMatch fills the small picture with in ``coarse_to_fine``. With 5 a line
#: between two surfaces (grass over gravel) across a 600 px hole in a 1200 px picture came
#: out 17 to 20 px off its line over half the hole on 5 of 8 seeds: filled at a fifth of the
#: size, PatchMatch's own coarsest levels put it a pixel off, 3.5 px at the small scale; with 3,
#: within 3 px on all 8 (7 and 9: 39 to 60 px off).
COARSE_PATCH_SIZE = 3
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
    scale = full_size_scale(hole > 0) if method == "hybrid" else 1.0
    if scale < 1.0:
        return coarse_to_fine(image, hole > 0, scale, seed, core)
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
    scale = full_size_scale(hole, EXTEND_HOLE_PIXELS)
    if scale < 1.0:  # a large new area: extended where it is small, then refined
        height, width = hole.shape
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_fill = extend(small_image, multiscale.touched(hole, size[::-1]), patch_size, seed)
        return multiscale.refine(image, hole, small_image, small_fill, seed)
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
        blurred = gradient.known_blur(small_image, small_hole, STRUCTURE_SIGMA)
        smooth = 0.5 * gradient.biharmonic(blurred, small_hole)
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


def full_size_scale(hole: np.ndarray, hole_pixels: int = FULL_SIZE_HOLE_PIXELS) -> float:
    """The scale a large ``hole`` is first filled at: where it has at most ``hole_pixels``
    (FULL_SIZE_HOLE_PIXELS for ``hybrid``, EXTEND_HOLE_PIXELS for ``extend``) and the picture
    at most FULL_SIZE_PIXELS; 1 (its own size) when that is a shrink by less
    than LEAST_SHRINK or would leave nothing known to fill from (a speckled mask)."""
    height, width = hole.shape
    scale = min(
        (hole_pixels / max(1, np.count_nonzero(hole))) ** 0.5,
        (FULL_SIZE_PIXELS / (height * width)) ** 0.5,
    )
    if scale > LEAST_SHRINK:
        return 1.0
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return 1.0 if multiscale.touched(hole, size).all() else scale


def coarse_to_fine(
    image: np.ndarray,
    hole: np.ndarray,
    scale: float,
    seed: int | None = None,
    core: np.ndarray | None = None,
) -> np.ndarray:
    """``hybrid``'s fill of a large hole at the photo's own resolution: filled at ``scale``
    (PatchMatch's patches COARSE_PATCH_SIZE wide), then refined a scale at a time up to the
    photo's own pixels (``multiscale.refine``), so the hole gets the photo's own grain, not an
    enlarged small fill."""
    height, width = hole.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_hole = multiscale.touched(hole, size[::-1])
    small_core = None
    if core is not None:  # what the mask selects fully, at the small scale too
        small_core = cv2.resize(core.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 1
    small_fill = fill(small_image, small_hole, "hybrid", COARSE_PATCH_SIZE, seed, small_core)
    return multiscale.refine(image, hole, small_image, small_fill, seed)
