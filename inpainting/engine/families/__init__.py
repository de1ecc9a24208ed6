"""The model families the diffusers engine runs, one module each (``sd15``, ``sdxl``,
``sd3``, ``flux``, ``zimage``, and the instruction-edit families ``qwen_edit``,
``kontext``, ``flux2_klein``, ``fibo2`` and ``qwen_image21``); adding a family is one module
here, its entry in ``FAMILIES`` and its test."""

from __future__ import annotations

from . import fibo2, flux, flux2_klein, kontext, qwen_edit, qwen_image21, sd3, sd15, sdxl, zimage
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
        flux.FAMILY,
        sd3.FAMILY,
        zimage.FAMILY,
        sdxl.FAMILY,
        sd15.FAMILY,
    )
}

__all__ = ["FAMILIES", "Capabilities", "Family", "Preview", "Unsupported", "family_of_folder"]


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
