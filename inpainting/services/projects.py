"""A layered job saved as a project file (issue 80) and opened again: a ZIP with a manifest
(its schema version, the prompt, the parameters, the layers in order with their names and
prompts) and its pictures (the picture, each layer's mask). What is read is bounded before
anything is unpacked, and every picture passes the upload checks on its header before any is
decoded: a hostile file (too many entries, a path that climbs out, a picture over the limit, a
zip bomb, a newer schema) is a 400 that says which."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from ..engine.layers import MAX_LAYERS
from ..errors import ClientError
from ..models import Generation
from ..uploads import IMAGE_FORMATS, MASK_FORMATS, image_size
from .files import stored_layers
from .generations import MASK_FROM_LAYERS

#: The manifest's schema this version writes and reads (a newer one is refused, named).
SCHEMA = 1
MANIFEST = "manifest.json"
#: The results a project keeps (a job's samples, at most).
MAX_RESULTS = 4
#: The entries a project may hold: the manifest, the picture, its mask, a mask a layer and
#: the results.
MAX_ENTRIES = 3 + MAX_LAYERS + MAX_RESULTS
#: A project is written to memory up to this, then to a temporary file: a job's stored
#: pictures are copied into it a chunk at a time, never held whole.
SPOOL_BYTES = 1024 * 1024
#: A picture's packed share: no honest PNG or JPEG compresses a hundredfold (a zip bomb does).
MAX_RATIO = 100
MAX_MANIFEST_BYTES = 256 * 1024


@dataclass(frozen=True)
class ProjectLayer:
    name: str
    prompt: str
    mask: bytes  # its mask as the job was sent it (the parameters say how it is read)


@dataclass(frozen=True)
class Project:
    image: bytes
    prompt: str
    params: dict
    layers: list[ProjectLayer]
    mask: bytes | None = None  # the job's own mask, if it sent one besides its layers
    results: list[bytes] = field(default_factory=list)


#: Opens an entry's bytes for reading (a stored file, or bytes in memory).
Opener = Callable[[], IO[bytes]]


def _write(out: IO[bytes], manifest_of: dict, entries: list[tuple[str, Opener]]) -> None:
    """The project file into ``out``: the manifest, then each entry copied a chunk at a time
    (pictures are stored as they are: a PNG does not pack again)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as packed:
        packed.writestr(MANIFEST, json.dumps(manifest_of, indent=1), zipfile.ZIP_DEFLATED)
        for name, opener in entries:
            with opener() as source, packed.open(name, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target)


def _manifest_of(
    prompt: str, params: dict, layers: list[tuple[str, str]], mask: bool, results: int
) -> tuple[dict, list[str]]:
    """The manifest of a project and the names of its pictures, in the order written: the
    picture, its mask (if any), each layer's mask, each result."""
    names = ["image.png", *(["mask.png"] if mask else [])]
    names += [f"layers/{index}.png" for index in range(len(layers))]
    names += [f"results/{index}.png" for index in range(results)]
    manifest = {
        "schema": SCHEMA,
        "prompt": prompt,
        "params": params,
        "image": "image.png",
        "mask": "mask.png" if mask else None,
        "layers": [
            {"name": name, "prompt": words, "mask": f"layers/{index}.png"}
            for index, (name, words) in enumerate(layers)
        ],
        "results": [f"results/{index}.png" for index in range(results)],
    }
    return manifest, names


def project_bytes(project: Project) -> bytes:
    """``project`` as its file (see ``_manifest_of``)."""
    manifest, names = _manifest_of(
        project.prompt,
        project.params,
        [(layer.name, layer.prompt) for layer in project.layers],
        project.mask is not None,
        len(project.results),
    )
    pictures = [project.image, *([project.mask] if project.mask else [])]
    pictures += [layer.mask for layer in project.layers] + project.results
    out = io.BytesIO()
    _write(
        out,
        manifest,
        [(n, lambda d=d: io.BytesIO(d)) for n, d in zip(names, pictures, strict=True)],
    )
    return out.getvalue()


def generation_project(*, generation: Generation) -> IO[bytes]:
    """A job saved as a project (its picture, mask, layers, parameters with the seed it ran
    with, and results), as a file to send: written through a spooled temporary file, its
    stored pictures copied a chunk at a time."""
    params = dict(generation.params)
    layers = [(layer["name"], layer["prompt"]) for layer in params.pop("layers", None) or []]
    if params.get("seed") is None and generation.seed is not None:
        params["seed"] = generation.seed  # the same job: the seed it ran with
    layer_masks = stored_layers(generation)
    made = (generation.metadata or {}).get(MASK_FROM_LAYERS)  # the union: not the job's own
    own_mask = generation.mask if generation.mask_id and not made else None
    results = list(generation.images.order_by("index"))[:MAX_RESULTS]
    manifest, names = _manifest_of(
        generation.prompt, params, layers, own_mask is not None, len(results)
    )
    files = [generation.source.file, *([own_mask.file] if own_mask else [])]
    files += [mask.file for mask in layer_masks] + [image.file for image in results]
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    _write(
        out, manifest, [(n, lambda f=f: f.open("rb")) for n, f in zip(names, files, strict=True)]
    )
    out.seek(0)
    return out


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
        listed = manifest.get("layers") or []
        if not isinstance(listed, list):
            raise _refused("its layers are not a list")
        if len(listed) > MAX_LAYERS:
            raise _refused(f"it has {len(listed)} layers; a job takes at most {MAX_LAYERS}")
        layers = []
        for index, layer in enumerate(listed):
            if not isinstance(layer, dict):
                raise _refused(f"its layer {index} is not an object")
            mask = _picture(packed, layer.get("mask"), f"layer {index}'s mask")
            _same_size(mask, size, f"layer {index}'s mask")
            layers.append(
                ProjectLayer(str(layer.get("name", "")), str(layer.get("prompt", "")), mask)
            )
        own = None
        if manifest.get("mask") is not None:
            own = _picture(packed, manifest["mask"], "mask")
            _same_size(own, size, "mask")
        results = manifest.get("results") or []
        if not isinstance(results, list) or len(results) > MAX_RESULTS:
            raise _refused(f"its results are not a list of at most {MAX_RESULTS}")
        kept = []
        for index, name in enumerate(results):
            kept.append(_picture(packed, name, f"result {index}"))
            image_size(kept[-1], field="project", formats=IMAGE_FORMATS)
    params = manifest.get("params") or {}
    if not isinstance(params, dict):
        raise _refused("its parameters are not an object")
    return Project(image, str(manifest.get("prompt", "")), params, layers, own, kept)


def _same_size(data: bytes, size: tuple[int, int], what: str) -> None:
    if image_size(data, field="project", formats=MASK_FORMATS) != size:
        raise _refused(f"its {what} is not the picture's size")


def project_upload_read(upload) -> Project:
    """A project file as uploaded, read no further than a project may be (``project_read``)."""
    return project_read(upload.read(_max_packed() + 1))


#: What of a job a project gives a request that sends one: its own fields win for the rest.
PROJECT_FIELDS = ("image", "mask", "layers", "layer_masks")


def project_request(project: Project) -> dict[str, Any]:
    """The fields of an img2img request a project makes: its parameters and prompt, its
    picture, its mask and its layers with their masks as files (a request's own fields win
    over its parameters, never over ``PROJECT_FIELDS``)."""

    def upload(name: str, data: bytes) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, data)

    fields: dict[str, Any] = {**project.params, "prompt": project.prompt}
    fields.pop("layers", None)
    fields["image"] = upload("image", project.image)
    if project.mask is not None:
        fields["mask"] = upload("mask", project.mask)
    if project.layers:
        fields["layers"] = [{"name": x.name, "prompt": x.prompt} for x in project.layers]
        fields["layer_masks"] = [
            upload(f"layer-{index}", layer.mask) for index, layer in enumerate(project.layers)
        ]
    return fields


def _data_url(data: bytes) -> str:
    kind = (Image.open(io.BytesIO(data)).format or "png").lower()  # the header alone
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def project_json(project: Project) -> dict[str, Any]:
    """A project opened for a page (the studio): its pictures as data URLs, nothing decoded."""
    return {
        "schema": SCHEMA,
        "prompt": project.prompt,
        "params": project.params,
        "image": _data_url(project.image),
        "mask": _data_url(project.mask) if project.mask is not None else None,
        "layers": [
            {"name": layer.name, "prompt": layer.prompt, "mask": _data_url(layer.mask)}
            for layer in project.layers
        ],
        "results": [_data_url(result) for result in project.results],
    }


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
