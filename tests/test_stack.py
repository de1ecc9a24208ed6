"""`make run`'s launcher on a fresh data folder: SQLite, embedded Redis, daphne and a worker;
one curl-style request from the README; Ctrl-C stops every process it started."""

import io
import os
import re
import signal
import sqlite3
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
from tests.live import die_with_parent, free_port, wait_until_up


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, log, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def not_a_debug_server(base: str) -> None:
    """``make run`` sets no DJANGO_DEBUG: an unknown address under an API prefix is the APIs'
    JSON 404 (clients parse it), anywhere else the project's page, never the URLconf."""
    for path, message in (
        ("/sdapi/v1/no-such-thing", lambda body: body["detail"]),  # A1111's shape
        ("/controlnet/x", lambda body: body["detail"]),
        ("/v1/images/variations", lambda body: body["error"]["message"]),  # OpenAI's
        ("/api/no-such-thing", lambda body: body["message"]),  # DreamLayer's
    ):
        response = requests.get(base + path, timeout=30)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "application/json", path
        assert message(response.json()) == f"Not found: no route GET {path} here.", path
    wrong_method = requests.delete(f"{base}/api/health", timeout=30)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Content-Type"] == "application/json"
    assert "not allowed" in wrong_method.json()["message"].lower()
    page = requests.get(f"{base}/no-such-page/", timeout=30)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")
    assert "There is nothing at this address." in page.text
    assert "URLconf" not in page.text and "sdapi" not in page.text


def a_crash_shows_no_traceback(base: str, database, key: str) -> None:
    """A real failure (the sessions table gone from the database): a 500 that says so, JSON
    under the APIs and the project's page elsewhere, with nothing of the crash in it."""
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE django_session")
    cookie = {"sessionid": "a-session-the-database-cannot-read"}
    api = requests.get(f"{base}/api/generations/", cookies=cookie, timeout=30)
    assert api.status_code == 500 and api.headers["Content-Type"] == "application/json"
    assert api.json()["message"].startswith("The server failed on this request")
    page = requests.get(f"{base}/history/", cookies=cookie, timeout=30)
    assert page.status_code == 500 and "Server error" in page.text
    for text in (api.text, page.text):
        assert "Traceback" not in text and "django_session" not in text and "SECRET" not in text
    # What needs no session still works, with a key.
    keyed = requests.get(f"{base}/api/health", headers={"Authorization": f"Api-Key {key}"})
    assert keyed.status_code == 200


#: Where the docs print commands for people to type (fenced blocks of these pages).
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def docs_commands() -> list[str]:
    """Every ``.venv/bin/python manage.py`` command the README and the guide print in a code
    block, as a person would type it: continuation lines joined, comments and the synopses'
    optional ``[...]`` parts left out, USERNAME the demo user. Left out: those that need a
    model file of the reader's or the network (``data/models/…``, ``download_model``, ``models
    install`` and ``remove``), and interactive ones (``createsuperuser``, ``models token``)."""
    commands = []
    for name in DOCS:
        block, inside = [], False
        for line in (ROOT / name).read_text().splitlines():
            if line.strip().startswith("```"):
                inside = not inside
                continue
            if inside:
                block.append(line)
        for line in re.sub(r"\\\n\s*", " ", "\n".join(block)).splitlines():
            line = line.strip()
            if "manage.py" not in line or line.startswith(("cp ", "#")):
                continue
            line = re.sub(r"\s+#.*$", "", line)
            while re.search(r"\[[^\[\]]*\]", line):
                line = re.sub(r"\s*\[[^\[\]]*\]", "", line)
            if "data/models/" in line or "download_model" in line:
                continue
            if re.search(r"manage\.py models (install|remove|token)\b", line):
                continue
            commands.append(line.replace("USERNAME", "demo"))
    return sorted(set(commands))


def docs_commands_run_as_written(work, env: dict) -> None:
    """Each command runs in a folder like the checkout (its ``.venv`` and ``manage.py``, and
    the pictures the commands name), with no environment variable of its own."""
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "manage.py").symlink_to(ROOT / "manage.py")
    for name in ("in.png", "photo.png"):
        (work / name).write_bytes(image_png())
    (work / "mask.png").write_bytes(black_box_mask_png())
    commands = docs_commands()
    names = {re.search(r"manage\.py (\w+(?: scan| list)?)", c).group(1) for c in commands}
    assert {"inpaint", "upscale", "models scan", "create_api_key"} <= names, names
    for command in commands:
        run = subprocess.run(
            ["bash", "-c", f"set -e; {command}; echo OK:$?"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0 and "Traceback" not in run.stderr, (command, run.stderr[-2000:])
    assert (work / "out.png").is_file() and (work / "big.png").is_file()


@pytest.mark.timeout(420)
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
            "DJANGO_DEBUG",
            "LOAD_SD_INPAINT",
            "SD_INPAINT_MODEL",
            "INPAINT_ENGINE",
            "INPAINT_WORKING_SIZE",
        )
    }
    # No hub answers: LaMa's first-start install says so in one line, and waits for nothing.
    env.update(
        DREAMLAYER_DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    log = tmp_path / "stack.log"
    stack = subprocess.Popen(
        [sys.executable, "-m", "dreamlayer_site.stack"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/api/health", stack, timeout=180, log=log)
        # The last thing printed: the address and the demo credentials, in a box.
        wait_for(lambda: "DreamLayer is ready on" in log.read_text(), log)
        announced = log.read_text().split("DreamLayer is ready on", 1)[1]
        assert f"http://127.0.0.1:{port}/" in announced.splitlines()[0]
        assert "Created the demo user: username 'demo', password '" in announced.splitlines()[1]
        wait_for(lambda: "lama | LaMa is not installed" in log.read_text(), log)
        offline = [line for line in log.read_text().splitlines() if line.startswith("lama |")]
        assert len(offline) == 1 and "the classical engine removes objects" in offline[0]
        output = log.read_text()
        assert "-------------- celery@" not in output  # no Celery banner
        assert "superuser privileges" not in log.read_text()
        key = subprocess.run(  # no environment variable: the data folder's secret key
            [sys.executable, "manage.py", "create_api_key", "demo"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        not_a_debug_server(base)
        docs_commands_run_as_written(tmp_path / "work", env)
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
        # At make run's level (warnings and errors) a request writes no line: the box stays.
        requests_logged = [line for line in log.read_text().splitlines() if '"POST /' in line]
        assert requests_logged == []
        a_crash_shows_no_traceback(base, tmp_path / "data" / "db.sqlite3", key)
    finally:
        os.killpg(stack.pid, signal.SIGINT)  # what Ctrl-C does to the foreground group
        try:
            assert stack.wait(60) == 0, "Ctrl-C is how make run stops: exit 0"
        finally:
            deadline = time.monotonic() + 30
            while group_alive(stack.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            alive = group_alive(stack.pid)
            if alive:
                os.killpg(stack.pid, signal.SIGKILL)
    assert not alive, "Ctrl-C left processes running:\n" + log.read_text()[-3000:]
