"""GrabCut and colour / flood selection find generated shapes."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from inpainting.engine import InvalidInput
from inpainting.engine.segment import colour_select, grabcut, selection_to_mask


def scene() -> tuple[Image.Image, np.ndarray]:
    """A textured background with a solid orange disc; returns the image and the disc."""
    rng = np.random.default_rng(1)
    background = rng.integers(0, 90, (200, 300, 3), dtype=np.uint8)
    background[..., 2] = 160  # bluish noise
    image = Image.fromarray(background, "RGB")
    ImageDraw.Draw(image).ellipse((100, 50, 200, 150), fill=(250, 140, 20))
    yy, xx = np.mgrid[0:200, 0:300]
    truth = ((xx - 150) ** 2 + (yy - 100) ** 2) <= 50**2
    return image, truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_grabcut_from_a_box():
    image, truth = scene()
    selected = grabcut(image, box=(90, 40, 210, 160))
    assert iou(selected, truth) > 0.9


def test_grabcut_from_points():
    image, truth = scene()
    selected = grabcut(image, foreground=[(150, 100), (130, 80)], background=[(10, 10), (290, 190)])
    assert iou(selected, truth) > 0.85


def test_flood_select_takes_the_connected_region():
    image, truth = scene()
    selected = colour_select(image, point=(150, 100), tolerance=20)
    assert iou(selected, truth) > 0.95
    assert not colour_select(image, point=(150, 100), tolerance=0).all()


def test_colour_select_anywhere_versus_contiguous():
    image = Image.new("RGB", (100, 50), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((5, 5, 20, 20), fill=(255, 0, 0))
    draw.rectangle((60, 5, 80, 20), fill=(250, 5, 0))
    connected = colour_select(image, point=(10, 10), tolerance=10)
    anywhere = colour_select(image, point=(10, 10), tolerance=10, contiguous=False)
    assert connected.sum() == 16 * 16
    assert anywhere.sum() == 16 * 16 + 21 * 16


def test_large_images_are_segmented_at_a_bounded_size():
    image = Image.new("RGB", (3000, 2000), (0, 0, 0))
    ImageDraw.Draw(image).rectangle((1000, 500, 1999, 1499), fill=(255, 255, 255))
    selected = colour_select(image, point=(1500, 1000), tolerance=30)
    assert selected.shape == (2000, 3000)
    assert abs(int(selected.sum()) - 1000 * 1000) < 0.01 * 1000 * 1000


def test_polarity_and_errors():
    selected = np.zeros((4, 4), bool)
    selected[1, 1] = True
    assert np.asarray(selection_to_mask(selected))[1, 1] == 0
    assert np.asarray(selection_to_mask(selected, "white_inpaints"))[1, 1] == 255
    image, _ = scene()
    with pytest.raises(InvalidInput, match="needs a box"):
        grabcut(image)
    with pytest.raises(InvalidInput, match="outside"):
        colour_select(image, point=(500, 10))
