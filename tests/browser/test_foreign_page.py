"""A page served from another origin calls DreamLayer's AUTOMATIC1111 API as openOutpaint does
(issue 37, ADR 8): ``fetch`` with no credentials, through the key in the path, from an origin
that ``CORS_ALLOWED_ORIGINS`` names. It gets an inpainted picture; without the key the call is
refused, a revoked key stops at once, and a page on an origin not named cannot read a thing."""

from __future__ import annotations

import base64
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.conftest import child_env
from tests.images import box_mask, gradient, png_bytes
from tests.live import daphne_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

W, H = 96, 64
BOX = (30, 18, 62, 44)

#: The client page: what openOutpaint's dream tool sends, and what it reads back.
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>A1111 client</title></head><body>
<img id="result" alt="">
<script>
async function inpaint(host, image, mask) {
  const body = {
    prompt: "a red ball", negative_prompt: "", seed: "7", cfg_scale: 7.0,
    sampler_index: "DDIM", steps: 3, denoising_strength: 0.7, mask_blur: 0,
    batch_size: 1, n_iter: 1, width: 96, height: 64, inpainting_fill: 1,
    inpaint_full_res: false, enable_hr: false, styles: [], alwayson_scripts: {},
    init_images: [image], mask: mask,
  };
  let response;
  try {
    response = await fetch(host + "/sdapi/v1/img2img", {
      method: "POST",
      headers: {"Accept": "application/json", "Content-Type": "application/json"},
      body: JSON.stringify(body),
    });
  } catch (error) {
    return {status: 0, error: String(error)};
  }
  const data = await response.json();
  if (!response.ok) return {status: response.status, detail: data.detail};
  document.getElementById("result").src = "data:image/png;base64," + data.images[0];
  return {status: response.status, images: data.images, seeds: JSON.parse(data.info).all_seeds};
}
</script></body></html>"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def server(django_db_blocker, page_port):
    """DreamLayer, letting the page's origin (127.0.0.1) call it; ``localhost`` is another
    origin, not named."""
    with django_db_blocker.unblock():
        env = child_env(
            CORS_ALLOWED_ORIGINS=f"http://127.0.0.1:{page_port}",
            INPAINT_ENGINE="auto",
            IMG2IMG_WAIT_SECONDS="120",
        )
    with daphne_server(env, Path(settings.DATA_DIR) / "daphne-foreign-page.log") as url:
        yield url


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_page_on_another_origin_inpaints_through_the_key_in_the_path(
    browser, server, page_port, user, api_key
):
    image = data_url(png_bytes(gradient(W, H)))
    mask = data_url(png_bytes(box_mask(W, H, BOX, inpaint_white=True)))
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{page_port}/")
    call = "([host, image, mask]) => inpaint(host, image, mask)"

    result = page.evaluate(call, [f"{server}/k/{api_key}", image, mask])
    assert result["status"] == 200, result
    assert result["seeds"] == [7]
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["images"][0]))).convert("RGB"))
    original = np.asarray(gradient(W, H))
    keep = np.asarray(box_mask(W, H, BOX, inpaint_white=True)) == 0
    assert np.array_equal(out[keep], original[keep])
    x0, y0, x1, y1 = BOX
    assert (out[y0:y1, x0:x1] != original[y0:y1, x0:x1]).any()
    assert page.locator("#result").evaluate("img => img.naturalWidth") == W  # shown

    refused = page.evaluate(call, [server, image, mask])  # the same call without the key
    assert refused["status"] == 401 and "No API key" in refused["detail"]

    api_key_revoke(api_key=ApiKey.objects.get(prefix=api_key.partition(".")[0]))
    revoked = page.evaluate(call, [f"{server}/k/{api_key}", image, mask])
    assert revoked["status"] == 401 and "revoked" in revoked["detail"]

    # The same page from an origin the deployment does not name, with a good key: the
    # browser keeps the answer from it.
    _, fresh = api_key_create(user=user, name="fresh")
    page.goto(f"http://localhost:{page_port}/")
    blocked = page.evaluate(call, [f"{server}/k/{fresh}", image, mask])
    assert blocked["status"] == 0 and "Failed to fetch" in blocked["error"]
    context.close()
