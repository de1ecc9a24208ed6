"""`make run`'s launcher on a fresh data folder: SQLite, embedded Redis, daphne and a worker;
one curl-style request from the README; Ctrl-C stops every process it started."""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask
from tests.conftest import ROOT
from tests.helpers import H, W, black_box_mask_png, image_png
from tests.images import decode
from tests.live import free_port, wait_until_up


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(240)
def test_make_run_stack_serves_the_readme_example_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_SETTINGS_MODULE",
            "DJANGO_SECRET_KEY",
            "LOAD_SD_INPAINT",
            "SD_INPAINT_MODEL",
            "INPAINT_ENGINE",
            "INPAINT_WORKING_SIZE",
        )
    }
    env.update(DREAMLAYER_DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    log = tmp_path / "stack.log"
    stack = subprocess.Popen(
        [sys.executable, "-m", "dreamlayer_site.stack"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/health", stack, timeout=180, log=log)
        output = log.read_text()
        assert "Created the demo user: username 'demo'" in output
        manage_env = dict(env, DJANGO_DEBUG="true")
        key = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "demo"],
            cwd=ROOT,
            env=manage_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        files = {
            "image": ("in.png", image_png(), "image/png"),
            "mask": ("mask.png", black_box_mask_png(), "image/png"),
        }
        response = requests.post(
            f"{base}/api/img2img",
            files=files,
            data={"prompt": "remove"},
            headers={"Authorization": f"Api-Key {key}"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        image = requests.get(
            body["images"][0], headers={"Authorization": f"Api-Key {key}"}, timeout=30
        )
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
        out, original = decode(image.content), decode(image_png())
        mask = effective_mask(Image.open(io.BytesIO(black_box_mask_png())), (W, H), MaskOptions())
        assert out.shape == original.shape
        assert np.array_equal(out[mask == 0], original[mask == 0])
        assert (out[mask == 255] != original[mask == 255]).any()
        assert (tmp_path / "data" / "db.sqlite3").exists()
    finally:
        os.killpg(stack.pid, signal.SIGINT)  # what Ctrl-C does to the foreground group
        try:
            stack.wait(60)
        finally:
            deadline = time.monotonic() + 30
            while group_alive(stack.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            alive = group_alive(stack.pid)
            if alive:
                os.killpg(stack.pid, signal.SIGKILL)
    assert not alive, "Ctrl-C left processes running:\n" + log.read_text()[-3000:]
