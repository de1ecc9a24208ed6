"""A layered job saved as a project file (issue 80) and opened again: a ZIP with a manifest
(its schema version, the prompt, the parameters, the layers in order with their names and
prompts) and its pictures (the picture, each layer's mask). What is read is bounded before
anything is unpacked, and every picture passes the upload checks on its header before any is
decoded: a hostile file (too many entries, a path that climbs out, a picture over the limit, a
zip bomb, a newer schema) is a 400 that says which."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings

from ..engine.layers import MAX_LAYERS
from ..errors import ClientError
from ..uploads import IMAGE_FORMATS, MASK_FORMATS, image_size

#: The manifest's schema this version writes and reads (a newer one is refused, named).
SCHEMA = 1
MANIFEST = "manifest.json"
#: The entries a project may hold: the manifest, the picture and a mask a layer.
MAX_ENTRIES = 2 + MAX_LAYERS
#: A picture's packed share: no honest PNG or JPEG compresses a hundredfold (a zip bomb does).
MAX_RATIO = 100
MAX_MANIFEST_BYTES = 256 * 1024


@dataclass(frozen=True)
class ProjectLayer:
    name: str
    prompt: str
    mask: bytes  # a PNG, DreamLayer's polarity: black regenerated


@dataclass(frozen=True)
class Project:
    image: bytes
    prompt: str
    params: dict
    layers: list[ProjectLayer]


def project_bytes(project: Project) -> bytes:
    """``project`` as its file: the manifest, ``image.png``, ``layers/<n>.png``."""
    manifest = {
        "schema": SCHEMA,
        "prompt": project.prompt,
        "params": project.params,
        "image": "image.png",
        "layers": [
            {"name": layer.name, "prompt": layer.prompt, "mask": f"layers/{index}.png"}
            for index, layer in enumerate(project.layers)
        ],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as packed:
        packed.writestr(MANIFEST, json.dumps(manifest, indent=1))
        packed.writestr("image.png", project.image)
        for index, layer in enumerate(project.layers):
            packed.writestr(f"layers/{index}.png", layer.mask)
    return out.getvalue()


def project_read(data: bytes) -> Project:
    """The project a file holds, every bound checked before a picture is read (see the
    module); a client error naming what is wrong otherwise."""
    if len(data) > _max_packed():
        raise _refused(f"it is {len(data):,} bytes; a project is at most {_max_packed():,}")
    try:
        packed = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _refused("it is not a ZIP file") from None
    with packed:
        entries = packed.infolist()
        if len(entries) > MAX_ENTRIES:
            raise _refused(f"it holds {len(entries)} files; a project holds at most {MAX_ENTRIES}")
        for entry in entries:
            _check_entry(entry)
        manifest = _manifest(packed)
        image = _picture(packed, manifest.get("image"), "image")
        size = image_size(image, field="project", formats=IMAGE_FORMATS)
        layers = []
        for index, layer in enumerate(manifest.get("layers") or []):
            if not isinstance(layer, dict):
                raise _refused(f"its layer {index} is not an object")
            mask = _picture(packed, layer.get("mask"), f"layer {index}'s mask")
            if image_size(mask, field="project", formats=MASK_FORMATS) != size:
                raise _refused(f"layer {index}'s mask is not the picture's size")
            layers.append(
                ProjectLayer(str(layer.get("name", "")), str(layer.get("prompt", "")), mask)
            )
    if len(layers) > MAX_LAYERS:
        raise _refused(f"it has {len(layers)} layers; a job takes at most {MAX_LAYERS}")
    params = manifest.get("params") or {}
    if not isinstance(params, dict):
        raise _refused("its parameters are not an object")
    return Project(image, str(manifest.get("prompt", "")), params, layers)


def _max_packed() -> int:
    return settings.UPLOAD_MAX_BYTES * MAX_ENTRIES


def _refused(why: str) -> ClientError:
    return ClientError(f"This is not a DreamLayer project it can open: {why}.", field="project")


def _check_entry(entry: zipfile.ZipInfo) -> None:
    """An entry's name stays inside the project, and what it unpacks to is bounded."""
    path = PurePosixPath(entry.filename)
    if path.is_absolute() or ".." in path.parts or "\\" in entry.filename:
        raise _refused(f"the file {entry.filename[:64]!r} is not inside it")
    limit = MAX_MANIFEST_BYTES if entry.filename == MANIFEST else settings.UPLOAD_MAX_BYTES
    if entry.file_size > limit:
        raise _refused(f"{entry.filename[:64]!r} unpacks to {entry.file_size:,} bytes")
    if entry.file_size > MAX_RATIO * max(entry.compress_size, 1) and entry.file_size > 1024**2:
        raise _refused(f"{entry.filename[:64]!r} is packed {MAX_RATIO} times or more (a zip bomb)")


def _unpacked(packed: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """An entry's bytes, read no further than ``limit`` (a header may lie about its size)."""
    with packed.open(name) as opened:
        data = opened.read(limit + 1)
    if len(data) > limit:
        raise _refused(f"{name[:64]!r} unpacks to more than {limit:,} bytes")
    return data


def _manifest(packed: zipfile.ZipFile) -> dict:
    if MANIFEST not in packed.namelist():
        raise _refused(f"it has no {MANIFEST}")
    try:
        manifest = json.loads(_unpacked(packed, MANIFEST, MAX_MANIFEST_BYTES))
    except ValueError:
        raise _refused(f"its {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("schema"), int):
        raise _refused(f"its {MANIFEST} names no schema")
    if manifest["schema"] > SCHEMA:
        raise _refused(
            f"it was saved by a newer DreamLayer (schema {manifest['schema']}; this one reads "
            f"{SCHEMA})"
        )
    return manifest


def _picture(packed: zipfile.ZipFile, name, what: str) -> bytes:
    if not isinstance(name, str) or name not in packed.namelist():
        raise _refused(f"its {what} is missing")
    return _unpacked(packed, name, settings.UPLOAD_MAX_BYTES)
