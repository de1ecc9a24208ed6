"""A new user's walk through the studio at phone (390 x 844) and desktop (1440 x 900) sizes on
a server with no diffusion model (issue 79): the notice says so on the first view and takes
one line on the next; a photo is loaded, painted and generated on the classical engine; the
result, its before / after slider and its buttons are on screen and nothing (the pinned
Generate bar on a phone) covers them. Each step's screenshot is written to /tmp/walk/ (and to
the screenshots folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image
from skimage import data as skimage_data

from tests.browser.conftest import log_in, screenshot
from tests.browser.helpers import set_brush, stroke, wait_overlay_settled
from tests.conftest import child_env
from tests.live import daphne_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

WALK = Path("/tmp/walk")
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}


@pytest.fixture(scope="module")
def server(django_db_blocker):
    """A server as ``make run`` starts one with no model: no diffusion, the fill engine."""
    with django_db_blocker.unblock():  # (auto: diffusion while the library holds a model)
        env = child_env(LOAD_SD_INPAINT="auto", INPAINT_ENGINE="auto")
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-walk.log") as url:
        yield url


def phone_photo(tmp_path: Path) -> Path:
    """A portrait photo as a phone takes it (900 x 1200 JPEG): the astronaut, cut to 3 : 4."""
    pixels = np.asarray(skimage_data.astronaut())[:, 64:448]
    path = tmp_path / "IMG_0001.jpg"
    Image.fromarray(pixels).resize((900, 1200), Image.LANCZOS).save(path, quality=90)
    return path


def shot(page, name: str) -> Path:
    """A screenshot of what is on screen, kept under /tmp/walk/ as well."""
    path = screenshot(page, f"walk-{name}")
    WALK.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, WALK / f"{name}.png")
    return path


def uncovered(page, selector: str) -> dict:
    """``selector``'s box, after checking that it lies inside the window and that the element
    at its centre is itself (or inside it): nothing, the pinned Generate bar included, covers
    it."""
    element = page.locator(selector)
    box = element.bounding_box()
    size = page.viewport_size
    assert box is not None, selector
    assert box["x"] >= -0.5 and box["y"] >= -0.5, (selector, box)
    assert box["x"] + box["width"] <= size["width"] + 0.5, (selector, box)
    assert box["y"] + box["height"] <= size["height"] + 0.5, (selector, box)
    on_top = element.evaluate(
        """(el) => { const r = el.getBoundingClientRect();
        const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
        return el.contains(top) ? null : (top ? top.outerHTML.slice(0, 80) : 'nothing'); }"""
    )
    assert on_top is None, f"{selector} is covered by {on_top}"
    return box


#: Each word of the elements' text with the number of line boxes it lies on (a Range's
#: client rectangles): two or more for a word broken across lines.
_WORD_LINES = """(elements) => elements.flatMap((el) => {
    const text = el.firstChild;
    const words = [];
    for (const match of text.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(text, match.index);
        range.setEnd(text, match.index + match[0].length);
        words.push([match[0], range.getClientRects().length]);
    }
    return words;
})"""


def words_broken(page, selector: str) -> list[str]:
    """The words of ``selector``'s elements that are broken across lines."""
    words = page.locator(selector).evaluate_all(_WORD_LINES)
    assert words, selector
    return [word for word, lines in words if lines != 1]


def overlaps(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_new_user_walks_from_the_notice_to_the_result(browser, server, size, tmp_path):
    viewport = SIZES[size]
    context = browser.new_context(viewport=viewport, has_touch=size == "phone")
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{server}/accounts/signup/")
        page.fill("#id_username", f"walker-{size}")
        page.fill("#id_password1", "a-long-enough-password-1")
        page.fill("#id_password2", "a-long-enough-password-1")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server}/")

        # The first view: the notice whole, on screen, in a user's words (no server internals).
        notice = uncovered(page, "#no-diffusion-note")
        text = page.inner_text("#no-diffusion-note")
        assert "does not follow a prompt" in text
        assert "an administrator installs a diffusion model" in text
        assert page.locator("#no-diffusion-note code").count() == 0
        assert "{#" not in page.inner_text("main")  # no template text on show
        shot(page, f"{size}-1-first-view")

        page.set_input_files("#image-input", str(phone_photo(tmp_path)))
        page.wait_for_selector("#editor:not([hidden])")
        shot(page, f"{size}-2-loaded")
        page.locator("#viewport").evaluate("el => el.scrollIntoView({block: 'start'})")
        canvas = page.locator("#overlay-canvas").bounding_box()
        set_brush(page, 60)
        # Across the astronaut's flag patch, in the canvas' own box.
        start = (canvas["width"] * 0.35, canvas["height"] * 0.55)
        end = (canvas["width"] * 0.55, canvas["height"] * 0.6)
        stroke(page, canvas, start, end)
        wait_overlay_settled(page)
        shot(page, f"{size}-3-painted")

        page.click("#generate")
        page.wait_for_selector("#result-panel:not([hidden])", timeout=120_000)
        page.wait_for_function("() => document.getElementById('after').naturalWidth > 0")
        page.wait_for_timeout(300)  # the scroll into view settles
        shot(page, f"{size}-4-result")
        result = uncovered(page, "#compare")
        slider = uncovered(page, "#compare-slider")
        buttons = [
            uncovered(page, selector)
            for selector in ("#download", "#use-as-input", "#back-to-mask", "#upscale")
        ]
        generate = page.locator("#generate").bounding_box()
        for box in [result, slider, *buttons]:
            assert not overlaps(box, generate), (box, generate)

        # The next visit: the notice is one line, which opens on a click.
        # A reload would bring back the place it was scrolled to, at a moment of the browser's
        # choosing (a scroll to the top right after it raced that): a next visit starts at the
        # top.
        page.evaluate("history.scrollRestoration = 'manual'")
        page.reload()
        page.wait_for_function("() => window.scrollY === 0")
        note = page.locator("#no-diffusion-note")
        uncovered(page, "#no-diffusion-note")
        line = note.locator("summary").bounding_box()
        collapsed = note.bounding_box()
        assert collapsed["height"] < notice["height"] / 2, (collapsed, notice)
        assert line["height"] < 40, line  # one line of text
        assert note.locator("p").is_hidden()
        shot(page, f"{size}-5-next-visit")
        note.locator("summary").click()
        assert note.locator("p").is_visible()
        assert note.bounding_box()["height"] > collapsed["height"] * 2
    finally:
        context.close()
    assert errors == []


def test_staff_read_how_to_install_in_words_that_never_break_on_a_phone(
    browser, server, django_user_model, tmp_path
):
    """Staff read the operator's part of the notice (where a model comes from, the scan) and
    of the Select tool (the mask models' folder); on a phone no word of their code spans is
    broken across lines."""
    django_user_model.objects.create_superuser("root", password="pw-root-123456")
    context = browser.new_context(viewport=SIZES["phone"], has_touch=True)
    page = context.new_page()
    try:
        log_in(page, server, "root", "pw-root-123456")
        text = page.inner_text("#no-diffusion-note")
        assert "manage.py models scan" in text and "with no restart" in text
        assert page.locator("#no-diffusion-note a", has_text="Model installs").is_visible()
        assert words_broken(page, "#no-diffusion-note code") == []
        page.set_input_files("#image-input", str(phone_photo(tmp_path)))
        page.wait_for_selector("#editor:not([hidden])")
        page.click("#tool-select")
        page.locator("#select-more").scroll_into_view_if_needed()
        assert words_broken(page, "#select-more code") == []
        shot(page, "phone-6-staff-select")
    finally:
        context.close()


def test_staff_read_the_override_that_keeps_diffusion_off(client, user, staff_user, settings):
    """LOAD_SD_INPAINT=false: staff read that it keeps diffusion off whatever is installed; a
    user reads only that an administrator installs a model."""
    settings.LOAD_SD_INPAINT = False
    settings.INPAINT_ENGINE = "auto"
    client.force_login(staff_user)
    staff = client.get("/").content.decode()
    assert "<code>LOAD_SD_INPAINT=false</code>" in staff and "keeps diffusion off" in staff
    client.force_login(user)
    ordinary = client.get("/").content.decode()
    assert 'id="no-diffusion-note"' in ordinary and "LOAD_SD_INPAINT" not in ordinary
    assert "an administrator installs a diffusion model" in ordinary
