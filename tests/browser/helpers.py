"""What the studio's browser tests share: real photos, opening an image, strokes, the overlay."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skimage_data


def photo(tmp_path: Path, name: str) -> tuple[Path, tuple[int, int]]:
    """One of scikit-image's photos (astronaut 512 x 512, coffee 600 x 400, chelsea the cat
    451 x 300) as a PNG file, and its size."""
    pixels = getattr(skimage_data, name)()
    image = Image.fromarray(np.asarray(pixels)[..., :3].astype(np.uint8))
    path = tmp_path / f"{name}.png"
    image.save(path)
    return path, image.size


def open_image(page, path, zoom: str | None = "100%") -> dict:
    """Load ``path`` into the studio; the image canvas' box on the page."""
    page.set_input_files("#image-input", str(path))
    page.wait_for_selector("#editor:not([hidden])")
    if zoom is not None:
        assert page.inner_text("#zoom-value") == zoom
    return page.locator("#image-canvas").bounding_box()


def settled_box(page, selector: str = "#image-canvas") -> dict:
    """An element's box once the layout has settled: a line shown above the canvas (choosing
    Select with no mask model) re-fits it on a later frame (a ResizeObserver), so a box read
    at once may be the old one. Read until two frames apart agree."""
    box = page.locator(selector).bounding_box()
    for _ in range(50):
        page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        again = page.locator(selector).bounding_box()
        if again == box:
            return box
        box = again
    return box


def set_brush(page, size: int) -> None:
    page.eval_on_selector(
        "#brush-size", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", size
    )
    assert page.inner_text("#brush-size-value") == str(size)


def stroke(page, box, start, end) -> None:
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=12)
    page.mouse.up()


def overlay_alpha(page, x: int, y: int) -> int:
    return page.evaluate(
        "([x, y]) => document.getElementById('overlay-canvas').getContext('2d')"
        ".getImageData(x, y, 1, 1).data[3]",
        [x, y],
    )


#: A canvas' RGBA bytes (``getImageData``, row by row) as base64: handed over as one string,
#: where an array of its numbers took Playwright seconds a photo to carry across.
_CANVAS_BYTES = """(c) => {
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let text = '';
    for (let i = 0; i < px.length; i += 0x8000) {
        text += String.fromCharCode.apply(null, px.subarray(i, i + 0x8000));
    }
    return [c.width, c.height, btoa(text)];
}"""


def canvas_rgba(page, selector: str) -> np.ndarray:
    """The canvas' pixels as the page holds them (``getImageData``): height x width x 4."""
    width, height, data = page.eval_on_selector(selector, _CANVAS_BYTES)
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)


def painted_pixels(page) -> int:
    """How many overlay pixels are tinted (painted or regenerated)."""
    return page.evaluate("""() => {
        const c = document.getElementById('overlay-canvas');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
        return n;
    }""")


def wait_overlay(page, x, y, painted: bool) -> None:
    test = "> 0" if painted else "=== 0"
    page.wait_for_function(
        "([x, y]) => document.getElementById('overlay-canvas').getContext('2d')"
        f".getImageData(x, y, 1, 1).data[3] {test}",
        arg=[x, y],
    )


def in_window(page, box) -> bool:
    size = page.viewport_size
    return (
        box is not None
        and box["x"] >= -0.5
        and box["y"] >= -0.5
        and box["x"] + box["width"] <= size["width"] + 0.5
        and box["y"] + box["height"] <= size["height"] + 0.5
    )


def parameter_rows(page) -> dict[str, str]:
    """The history detail page's parameter table, label -> value."""
    return dict(
        zip(
            page.locator("table.params th").all_inner_texts(),
            page.locator("table.params td").all_inner_texts(),
            strict=True,
        )
    )


def wait_overlay_settled(page, after: str | None = None) -> None:
    """Wait until the overlay shows the server's answer for the latest change (none pending),
    and, given ``after`` (a ``data-ready`` read before the change), a newer answer than it."""
    page.wait_for_function(
        "(r) => { const c = document.getElementById('overlay-canvas');"
        " return c.dataset.pending !== 'true' && (r === null || c.dataset.ready !== r); }",
        arg=after,
    )


def generate_with_model(page, box, model: str, prompt: str = "a red rose") -> None:
    """Pick ``model`` (the diffusers engine already chosen), paint a stroke, generate 4 steps
    and wait for the result."""
    page.select_option("#model", model)
    page.fill("#prompt", prompt)
    page.fill("#num_inference_steps", "4")
    stroke(page, box, (150, 100), (250, 150))
    page.click("#generate")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)
