"""The studio's keyboard shortcuts on the canvas, as the user presses them: the tools' letters,
[ and ] for the brush, Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y for undo and redo; keys typed into a text
field stay the field's. (Space to pan: test_studio_photos; the result's arrows:
test_studio_round_three.)"""

from __future__ import annotations

import pytest

from tests.browser.helpers import open_image, photo, set_brush, stroke

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TOOLS = ["brush", "eraser", "lasso", "rectangle", "select"]


def pressed_tool(page) -> list[str]:
    return [name for name in TOOLS if page.get_attribute(f"#tool-{name}", "aria-pressed") == "true"]


def test_the_canvas_shortcuts_and_a_text_field_keeps_its_keys(studio, tmp_path):
    path, _ = photo(tmp_path, "chelsea")
    box = open_image(studio, path)

    # The tools by their letters (Shift is the same key); with Alt or Ctrl they stay the browser's.
    for key, tool in [("e", "eraser"), ("l", "lasso"), ("r", "rectangle"), ("s", "select")]:
        studio.keyboard.press(key)
        assert pressed_tool(studio) == [tool]
    assert studio.locator("#select-field").is_visible()
    studio.keyboard.press("Shift+KeyB")
    assert pressed_tool(studio) == ["brush"]
    studio.keyboard.press("Alt+KeyE")
    assert pressed_tool(studio) == ["brush"]

    # [ and ]: by 1 up to 10 pixels, by 5 above; also while the brush's slider has the focus.
    set_brush(studio, 10)
    studio.keyboard.press("[")
    assert studio.inner_text("#brush-size-value") == "9"
    studio.keyboard.press("]")
    assert studio.inner_text("#brush-size-value") == "10"
    studio.focus("#brush-size")
    studio.keyboard.press("]")
    assert studio.inner_text("#brush-size-value") == "15"
    assert studio.input_value("#brush-size") == "15"

    # Undo and redo.
    set_brush(studio, 30)
    stroke(studio, box, (100, 100), (200, 120))
    studio.wait_for_function("() => !document.getElementById('undo').disabled")
    studio.keyboard.press("Control+KeyZ")
    assert studio.is_disabled("#undo") and studio.is_enabled("#redo")
    studio.keyboard.press("Control+Shift+KeyZ")
    assert studio.is_enabled("#undo") and studio.is_disabled("#redo")
    studio.keyboard.press("Control+KeyZ")
    studio.keyboard.press("Control+KeyY")
    assert studio.is_enabled("#undo") and studio.is_disabled("#redo")

    # In the prompt the same keys are text: no tool, no brush size, no undo of the mask.
    studio.fill("#prompt", "")
    studio.click("#prompt")
    studio.keyboard.type("elsr[]")
    assert studio.input_value("#prompt") == "elsr[]"
    studio.keyboard.press("Control+KeyZ")
    assert pressed_tool(studio) == ["brush"]
    assert studio.inner_text("#brush-size-value") == "30"
    assert studio.is_enabled("#undo") and studio.is_disabled("#redo")
