"""The library's mask models (SAM 2.1, SAM 3, rembg): which one a selection method uses, what
is installed, and what to install when none is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from .. import selectors
from ..engine import selection
from ..errors import ClientError, echoed
from ..models import LibraryModel
from .library import bare_name, same_name

# ----- mask models (object selection) --------------------------------------------------------
#: What to copy in for each family when none is installed (docs/model-library.md lists the files).
MASK_MODEL_HINTS = {
    selection.SAM2: "a SAM 2.1 folder in the transformers layout (config.json and "
    "model.safetensors, e.g. facebook/sam2.1-hiera-tiny)",
    selection.SAM3: "a SAM 3 folder in the transformers layout (config.json, model.safetensors "
    "and its tokenizer files, facebook/sam3)",
    selection.REMBG: "a rembg model file (u2net.onnx, isnet-general-use.onnx, silueta.onnx or "
    "u2net_human_seg.onnx)",
    selection.GROUNDING_DINO: "a GroundingDINO folder in the transformers layout (config.json, "
    "model.safetensors, its tokenizer files and preprocessor_config.json, e.g. "
    "IDEA-Research/grounding-dino-tiny)",
}


class MaskModelMissing(ClientError):
    """A selection's mask model is not installed: a 503 that names the file to copy in, or
    for a name the library does not know a 400 that lists the mask models there are."""


def _not_installed(what: str, copy: str) -> ClientError:
    return MaskModelMissing(
        f"{what} (GET /api/mask-models lists what is installed): paint the mask instead, or "
        "ask the server's staff to add one.",
        field="model",
        status=503,
        # The folder by its setting's name: a server path is for no client (FooocusAPI's
        # fallback header included).
        operator=f"To add one: copy {copy} into MASK_MODELS_DIR and run `manage.py models scan`.",
    )


@dataclass(frozen=True)
class MaskModelChoice:
    """The mask model a selection runs, and the GroundingDINO whose boxes it takes (a phrase
    with SAM 2.1), if any."""

    model: LibraryModel
    detector: LibraryModel | None = None


def _runnable_alone(method: str, family: str, installed: set[str]) -> bool:
    """Whether a model of ``family`` can select by ``method`` with what is ``installed``."""
    needed = selection.DETECTOR.get((method, family))
    return family in selection.METHOD_FAMILIES[method] and (needed is None or needed in installed)


def library_mask_model_for(method: str, requested: str | None) -> MaskModelChoice:
    """The mask model a selection by ``method`` runs: the one named (enabled, present and of
    a family that can run the method; a name with or without its ``.onnx``), else the first
    installed that can, in the method's order of preference (a phrase: SAM 3, else SAM 2.1
    with a GroundingDINO). None installed: a 503 that names the file to copy in."""
    families = selection.METHOD_FAMILIES[method]
    usable = list(selectors.library_mask_model_list())
    installed = {m.family for m in usable}
    if requested:
        bare = bare_name(requested, (".onnx",))
        model = next((m for m in usable if same_name(m.name, requested, (".onnx",))), None)
        if model is None and bare in selection.REMBG_MODELS:  # a file we know: name it
            raise _not_installed(
                f"The mask model {echoed(requested)} is not installed", f"{bare}.onnx"
            )
        if model is None:
            names = ", ".join(m.name for m in usable) or "none"
            raise MaskModelMissing(
                f"Unknown mask model {echoed(requested)}; the mask models are: {names} "
                "(GET /api/mask-models).",
                field="model",
            )
        if model.family not in families:
            raise ClientError(
                f"{model.name} is a {selection.FAMILY_LABELS[model.family]}; method={method} "
                f"needs a {' or '.join(selection.FAMILY_LABELS[f] for f in families)}.",
                field="model",
            )
    else:
        model = next(
            (
                m
                for family in families
                for m in usable
                if m.family == family and _runnable_alone(method, family, installed)
            ),
            None,
        )
        if model is None:
            labels = [selection.FAMILY_LABELS[f] for f in families]
            hints = [MASK_MODEL_HINTS[f] for f in families]
            if method == "text":
                labels[-1] += " with a GroundingDINO"
                hints[-1] += " with " + MASK_MODEL_HINTS[selection.GROUNDING_DINO]
            what = " or ".join(labels)
            raise _not_installed(f"No {what} is installed (method={method})", " or ".join(hints))
    needed = selection.DETECTOR.get((method, model.family))
    if needed is None:
        return MaskModelChoice(model)
    detector = next((m for m in usable if m.family == needed), None)
    if detector is None:
        raise _not_installed(
            f"A phrase with {model.name} needs a GroundingDINO, and none is installed",
            MASK_MODEL_HINTS[needed],
        )
    return MaskModelChoice(model, detector)


def library_mask_model_local_path(model: LibraryModel) -> Path | None:
    """Where ``model``'s file or folder is on this machine (its own MASK_MODELS_DIR)."""
    path = Path(settings.MASK_MODELS_DIR) / model.name
    return path if path.exists() else None


def _methods(family: str, installed: set[str]) -> list[str]:
    """What a model of ``family`` selects by here: alone, or with the other models it needs
    (a GroundingDINO with a SAM 2.1 both select by a phrase when both are installed)."""
    methods = {m for m in selection.METHOD_FAMILIES if _runnable_alone(m, family, installed)}
    for (method, with_family), detector in selection.DETECTOR.items():
        if family == detector and with_family in installed:
            methods.add(method)
    return sorted(methods)


def library_mask_models_described() -> list[dict]:
    """The enabled mask models as ``GET /api/mask-models`` lists them, with the methods each
    runs with what is installed."""
    models = list(selectors.library_mask_model_list())
    installed = {m.family for m in models}
    return [
        {
            "name": m.name,
            "family": m.family,
            "family_label": selection.FAMILY_LABELS[m.family],
            "methods": _methods(m.family, installed),
            "layout": m.layout,
            "size_bytes": m.size_bytes,
            "sha256": m.sha256,
        }
        for m in models
    ]
