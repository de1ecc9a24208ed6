"""Project files (issue 80, ``services.projects``): a layered job saved and opened again is
the same job; a hostile file is refused, saying why, before any picture is decoded."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from inpainting.errors import ClientError
from inpainting.services import projects
from inpainting.services.projects import Project, ProjectLayer, project_bytes, project_read
from tests.images import box_mask, gradient, png_bytes

W, H = 64, 48


def a_project(layers: int = 2) -> Project:
    boxes = [(4, 4, 30, 30), (20, 10, 60, 40), (0, 0, 8, 8)]
    return Project(
        image=png_bytes(gradient(W, H)),
        prompt="a room",
        params={"seed": 5, "num_inference_steps": 20},
        layers=[
            ProjectLayer(
                f"layer {i}",
                f"prompt {i}",
                png_bytes(box_mask(W, H, boxes[i % 3], inpaint_white=False)),
            )
            for i in range(layers)
        ],
    )


def zipped(entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as packed:
        for name, data in entries.items():
            packed.writestr(name, data)
    return out.getvalue()


def manifest(**fields) -> bytes:
    body = {"schema": 1, "prompt": "", "image": "image.png", "layers": [], **fields}
    return json.dumps(body).encode()


def refused(data: bytes) -> str:
    with pytest.raises(ClientError) as raised:
        project_read(data)
    assert raised.value.field == "project" and raised.value.status == 400
    return raised.value.message


def test_a_project_saved_and_opened_again_is_the_same_job():
    project = a_project()
    assert project_read(project_bytes(project)) == project


def test_a_hostile_file_is_refused_saying_why_before_any_picture_is_decoded(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("a picture was decoded")

    picture = a_project().image
    huge = png_bytes(Image.new("L", (5000, 4000)))  # 20 million pixels: over the limit
    wider = png_bytes(box_mask(W + 1, H, (0, 0, 4, 4), inpaint_white=False))
    monkeypatch.setattr(Image.Image, "load", no_decoding)  # from here on, none is decoded
    assert "not a ZIP file" in refused(b"PK\x03\x04 nothing else")
    many = {"manifest.json": manifest(), **{f"f{i}.png": picture for i in range(20)}}
    assert f"holds 21 files; a project holds at most {projects.MAX_ENTRIES}" in refused(
        zipped(many)
    )
    climbing = {"manifest.json": manifest(image="../image.png"), "../image.png": picture}
    assert "'../image.png' is not inside it" in refused(zipped(climbing))
    bomb = {"manifest.json": manifest(), "image.png": b"\0" * (8 * 1024**2)}
    assert "is packed 100 times or more (a zip bomb)" in refused(zipped(bomb))
    over = refused(zipped({"manifest.json": manifest(), "image.png": huge}))
    assert "pixels" in over
    newer = refused(zipped({"manifest.json": manifest(schema=2), "image.png": picture}))
    assert "saved by a newer DreamLayer (schema 2; this one reads 1)" in newer
    assert "has no manifest.json" in refused(zipped({"image.png": picture}))
    odd = {
        "manifest.json": manifest(layers=[{"name": "a", "prompt": "", "mask": "m.png"}]),
        "image.png": picture,
        "m.png": wider,
    }
    assert "layer 0's mask is not the picture's size" in refused(zipped(odd))
