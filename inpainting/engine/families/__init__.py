"""The model families the diffusers engine runs, one module each (``sd15``, ``sdxl``,
``sd3``, ``flux``, ``zimage``, and the instruction-edit families ``qwen_edit``,
``kontext``, ``flux2_klein``, ``fibo2``, ``qwen_image21`` and ``flux3_klein``); adding a
family is one module here, its entry in ``FAMILIES`` and its test."""

from __future__ import annotations

from pathlib import Path

from . import (
    fibo2,
    flux,
    flux2_klein,
    flux3_klein,
    kontext,
    qwen_edit,
    qwen_image21,
    sd3,
    sd15,
    sdxl,
    zimage,
)
from .base import Capabilities, Family, Preview, Unsupported

#: Every family by its stored name, in the order single files are matched against them.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        qwen_edit.FAMILY,
        qwen_edit.PLUS,
        kontext.FAMILY,
        flux2_klein.FAMILY,
        flux2_klein.BASE,
        fibo2.FAMILY,
        qwen_image21.FAMILY,
        flux3_klein.FAMILY,
        flux3_klein.BASE,
        flux.FAMILY,
        sd3.FAMILY,
        zimage.FAMILY,
        sdxl.FAMILY,
        sd15.FAMILY,
    )
}

__all__ = [
    "FAMILIES",
    "INDEX_FILES",
    "Capabilities",
    "Family",
    "Preview",
    "Unsupported",
    "family_of_folder",
    "index_file",
]

#: The file that makes a folder a diffusers pipeline: ``model_index.json``, or a modular
#: pipeline's ``modular_model_index.json`` (FLUX.3 [klein]).
INDEX_FILES = ("model_index.json", "modular_model_index.json")


def index_file(folder: Path) -> Path | None:
    """The pipeline index ``folder`` holds (``INDEX_FILES``, in that order), or None."""
    return next((folder / name for name in INDEX_FILES if (folder / name).is_file()), None)


def family_of_folder(index: dict) -> Family | None:
    """The family of a diffusers folder by its ``model_index.json``: the class it names, and
    the flags that tell families of one class apart."""
    class_name = str(index.get("_class_name", ""))
    return next(
        (
            f
            for f in FAMILIES.values()
            if class_name in f.folder_classes
            and all(bool(index.get(key, False)) == value for key, value in f.folder_flags.items())
        ),
        None,
    )
