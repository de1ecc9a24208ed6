"""The effective mask, computed in exactly one place.

Every surface (native API, compat endpoints, browser, CLI) hands a mask file and its options
to ``effective_mask``; the result is a ``uint8`` array the size of the image in which 0 means
"keep this pixel exactly", 255 means "regenerate it" and values between blend the two.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .parameters import check
from .types import ALPHA_RULES, InvalidInput, MaskOptions

#: A mask whose aspect ratio differs from the image's by more than this is refused.
ASPECT_TOLERANCE = 0.01


def _has_transparency(mask: Image.Image) -> bool:
    if mask.mode in ("RGBA", "LA", "PA"):
        alpha = mask.getchannel("A")
        return alpha.getextrema()[0] < 255
    return False


def _with_alpha(mask: Image.Image) -> Image.Image:
    """Palette images and images with a transparent colour, as RGBA (their alpha counts)."""
    if mask.mode == "P" or (mask.mode in ("L", "RGB") and "transparency" in mask.info):
        return mask.convert("RGBA")
    return mask


def has_alpha(mask: Image.Image) -> bool:
    """Whether the file has an alpha channel (or a transparent colour), read from its header."""
    return mask.mode in ("RGBA", "LA", "PA") or (
        mask.mode in ("P", "L", "RGB") and "transparency" in mask.info
    )


def has_transparent_pixels(mask: Image.Image) -> bool:
    """Whether a pixel of the mask file is transparent: its alpha then says what is
    regenerated (``_regenerate_values``)."""
    return _has_transparency(_with_alpha(mask))


def regenerated_colour(transparent: bool, options: MaskOptions) -> str:
    """Which pixels of the mask file as sent are regenerated, in a word: "white" or "black"
    (the endpoint's polarity, swapped by invert), or "transparent" (or, inverted, "opaque")
    when the file has transparent pixels (``transparent``: ``has_transparent_pixels``). The
    rule of ``_regenerate_values``, for people."""
    check("mask_mode", options.mode)
    if options.alpha == "required" or transparent:
        opaque = (options.alpha == "opaque") != options.invert
        return "opaque" if opaque else "transparent"
    white = (options.mode == "white_inpaints") != options.invert
    return "white" if white else "black"


def mask_file_of(share: np.ndarray, options: MaskOptions) -> Image.Image:
    """A mask file (L) that ``effective_mask`` reads, under ``options``, as ``share`` (0 to 1
    of each pixel regenerated) before grow and feather: the one rule written the other way
    (a layered job's union stored as its mask, each layer painted in turn)."""
    colour = regenerated_colour(False, options)
    if colour not in ("white", "black"):
        raise InvalidInput("A mask of these rules is read from its alpha only.", field="mask")
    values = np.rint(np.clip(share, 0.0, 1.0) * 255).astype(np.uint8)
    return Image.fromarray(values if colour == "white" else 255 - values, "L")


def _regenerate_values(mask: Image.Image, options: MaskOptions) -> np.ndarray:
    """Map the file's pixels to 0..255 where 255 = regenerate, before invert, grow and blur."""
    check("mask_mode", options.mode)
    if options.alpha not in ALPHA_RULES:
        raise InvalidInput(
            f"Unknown alpha rule {options.alpha!r}; choose one of {ALPHA_RULES}.",
            field="mask_alpha",
        )
    if options.alpha == "required":
        if not has_alpha(mask):
            raise InvalidInput(
                "Invalid mask image format - mask image missing alpha channel", field="mask"
            )
        return 255 - np.asarray(_with_alpha(mask).getchannel("A"), dtype=np.uint8)
    mask = _with_alpha(mask)
    if mask.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        mask = Image.fromarray(
            np.clip(np.asarray(mask, dtype=np.float64) / 257.0, 0, 255).astype(np.uint8)
        )
    if _has_transparency(mask):
        alpha = np.asarray(mask.getchannel("A"), dtype=np.uint8)
        if options.alpha == "opaque":  # AUTOMATIC1111's binary rule: strokes on a clear layer
            return np.where(alpha > 128, 255, 0).astype(np.uint8)
        # Transparent = inpaint, whatever the endpoint's colour polarity.
        return 255 - alpha
    luminance = np.asarray(mask.convert("L"), dtype=np.uint8)
    return 255 - luminance if options.mode == "black_inpaints" else luminance.copy()


def check_mask_size(mask_size: tuple[int, int], size: tuple[int, int], exact: bool) -> None:
    """A mask of another size is scaled to the image when the aspect ratios agree within 1 %
    (``exact``: refused); one of another shape is refused."""
    width, height = size
    mask_w, mask_h = mask_size
    if (mask_w, mask_h) == (width, height):
        return
    if exact:
        raise InvalidInput(
            f"Image and mask size mismatch: the image is {width}x{height}, "
            f"the mask {mask_w}x{mask_h}.",
            field="mask",
        )
    image_ratio = width / height
    mask_ratio = mask_w / mask_h
    if abs(mask_ratio - image_ratio) / image_ratio > ASPECT_TOLERANCE:
        raise InvalidInput(
            f"The mask is {mask_w}x{mask_h} but the image is {width}x{height}: their aspect "
            "ratios differ by more than 1 %, so the mask cannot be scaled to the image.",
            field="mask",
        )


def fit_to_image(values: np.ndarray, size: tuple[int, int], exact: bool = False) -> np.ndarray:
    """Scale a mask to the image size when the aspect ratios agree within 1 %."""
    check_mask_size(values.shape[::-1], size, exact)
    if values.shape[::-1] == tuple(size):
        return values
    return cv2.resize(values, tuple(size), interpolation=cv2.INTER_LINEAR)


#: The largest radius grown with one round kernel (``mask_grow``'s range); past it, erase mode's
#: dilation on top grows in steps of GROW_STEP: a round kernel costs about its area a pixel
#: (a 12 MP mask grown by 164 px in one kernel: 9.4 CPU-s; in steps of 16: 1.1 s), and the
#: steps' sum is round to within a pixel or two at the rim.
ONE_KERNEL_RADIUS = 64
GROW_STEP = 16


def _round_kernel(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def grow(values: np.ndarray, pixels: int) -> np.ndarray:
    """Values (0..255) grown by ``pixels`` (a round kernel), shrunk when it is negative."""
    if pixels == 0:
        return values
    radius = abs(pixels)
    if pixels < 0:
        return cv2.erode(values, _round_kernel(radius), borderType=cv2.BORDER_REPLICATE)
    steps = [radius] if radius <= ONE_KERNEL_RADIUS else [GROW_STEP] * (radius // GROW_STEP)
    if radius > ONE_KERNEL_RADIUS and radius % GROW_STEP:
        steps.append(radius % GROW_STEP)
    for step in steps:
        values = cv2.dilate(
            values, _round_kernel(step), borderType=cv2.BORDER_CONSTANT, borderValue=0
        )
    return values


def _falloff(distance: np.ndarray, width: int) -> np.ndarray:
    """A raised cosine: 1 at distance 0, 1/2 at ``width / 2``, 0 from ``width`` on."""
    ratio = np.minimum(distance / float(width), 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * ratio))


def feather(values: np.ndarray, width: int) -> np.ndarray:
    """Feather the mask **outward** (SPEC section 3): every pixel keeps at least its own value,
    so the selected pixels are fully regenerated, and the weight fades from the mask's edge
    to half at ``width / 2`` pixels outside it and to exactly 0 at ``width``.

    A pixel outside takes the largest of two spreads: from the nearest fully selected pixel
    (255), and from the nearest selected pixel of any value (its value), each times the
    falloff of the distance. So an antialiased rim does not weaken the feather of the stroke
    it belongs to, and a gray region fades out from its own gray. Only the mask's bounding
    box plus the feather's reach is computed.
    """
    if width <= 0 or not values.any():
        return values
    reach = width
    height, full_width = values.shape
    ys, xs = np.nonzero(values)
    y0, y1 = max(0, int(ys.min()) - reach), min(height, int(ys.max()) + 1 + reach)
    x0, x1 = max(0, int(xs.min()) - reach), min(full_width, int(xs.max()) + 1 + reach)
    box = values[y0:y1, x0:x1]
    spread = np.zeros(box.shape, np.float32)
    full = box == 255
    if full.any():
        distance = cv2.distanceTransform((~full).astype(np.uint8), cv2.DIST_L2, 5)
        spread = 255.0 * _falloff(distance, width)
    selected = box > 0
    if not full.all() and (selected & ~full).any():
        # Each pixel's nearest selected pixel: labels count the zero pixels of the source in
        # row-major order, so the selected values in that order are the lookup table.
        distance, labels = cv2.distanceTransformWithLabels(
            (~selected).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        nearest = np.concatenate([[0], box[selected]]).astype(np.float32)[labels]
        spread = np.maximum(spread, nearest * _falloff(distance, width))
    out = values.copy()
    out[y0:y1, x0:x1] = np.maximum(box, np.rint(spread).astype(np.uint8))
    return out


def effective_mask(mask: Image.Image, size: tuple[int, int], options: MaskOptions) -> np.ndarray:
    """Return the effective mask (H x W uint8, 255 = regenerate) for an image of ``size``.

    Order: polarity or alpha, invert, scale to the image, grow / shrink (and erase mode's
    dilation), feather (outward).
    """
    check("mask_grow", options.grow)
    check("dilate_pixels", options.dilate)
    check("mask_blur", options.blur)
    values = _regenerate_values(mask, options)
    if options.threshold is not None:
        values = np.where(values > options.threshold, 255, 0).astype(np.uint8)
    if options.invert:
        values = 255 - values
    values = fit_to_image(values, size, options.exact_size)
    values = grow(values, options.grow + options.dilate)
    values = feather(values, options.blur)
    return np.ascontiguousarray(values, dtype=np.uint8)
