"""The model library: what diffusion models this deployment has, recorded by a scan of
``MODELS_DIR`` (single-file ``.safetensors`` checkpoints and diffusers folders) and of the
Hugging Face cache, each probed for its family without loading it (``engine.probe``)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from huggingface_hub import constants as hf_constants

from .. import engine, fleet, selectors
from ..conf import deployment_family, engine_config, model_status
from ..engine import selection, superres, upscale
from ..engine.families import FAMILIES, Family
from ..engine.parameters import check_loras
from ..engine.probe import (
    PICKLE_SUFFIXES,
    Probe,
    Unsupported,
    config_folder,
    probe,
    probe_controlnet,
    probe_ip_adapter,
    probe_lora,
)
from ..errors import ClientError, echoed
from ..models import SUPER_RESOLUTION, A1111Options, LibraryModel
from ..params import GenerationParams

logger = logging.getLogger(__name__)

#: Folders of MODELS_DIR that hold other kinds of file (pipeline configurations; a later
#: issue's LoRAs, ControlNets).
OTHER_KINDS = frozenset({"loras", "controlnets", "ip-adapters", "masks", "configs"})
_HASH_CHUNK = 8 * 1024 * 1024


@dataclass
class ScanReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    default: str | None = None


@dataclass(frozen=True)
class _Found:
    name: str
    path: Path
    hf_cache: bool = False
    kind: str = LibraryModel.Kind.CHECKPOINT

    @property
    def label(self) -> str:
        """How the scan's report names it (a LoRA or a ControlNet with its folder)."""
        return FOLDER_OF[self.kind] + self.name


#: How the scan's report prefixes each kind (the folder it lives in).
FOLDER_OF = {
    LibraryModel.Kind.CHECKPOINT: "",
    LibraryModel.Kind.LORA: "loras/",
    LibraryModel.Kind.CONTROLNET: "controlnets/",
    LibraryModel.Kind.IP_ADAPTER: "ip-adapters/",
    LibraryModel.Kind.MASK: "masks/",
    LibraryModel.Kind.UPSCALER: "upscalers/",
}


def _kind_candidates(root: Path, kind: str) -> list[_Found]:
    """The entries of a LoRA, ControlNet or mask model folder that may be one:
    ``.safetensors`` files and pickles (refused with the reason), for ControlNets and mask
    models folders too, for mask models ``.onnx`` files."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        weights = suffix == ".safetensors" or suffix in PICKLE_SUFFIXES
        if kind == LibraryModel.Kind.MASK:
            weights = weights or suffix == ".onnx"
        folders = kind in (
            LibraryModel.Kind.CONTROLNET,
            LibraryModel.Kind.IP_ADAPTER,
            LibraryModel.Kind.MASK,
        )
        if (path.is_file() and weights) or (path.is_dir() and folders):
            found.append(_Found(path.name, path, kind=kind))
    return found


def _candidates(root: Path, hf_cache: Path) -> list[_Found]:
    found: list[_Found] = []
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name.startswith(".") or path.name in OTHER_KINDS:
                continue
            suffix = path.suffix.lower()
            if path.is_file() and (suffix == ".safetensors" or suffix in PICKLE_SUFFIXES):
                found.append(_Found(path.name, path))
            elif path.is_dir() and (path / "model_index.json").is_file():
                found.append(_Found(path.name, path))
    if hf_cache.is_dir():
        for repo in sorted(hf_cache.glob("models--*")):
            snapshot = _newest_snapshot(repo)
            if snapshot is not None:
                name = repo.name.removeprefix("models--").replace("--", "/")
                found.append(_Found(name, snapshot, hf_cache=True))
    return found


def _newest_snapshot(repo: Path) -> Path | None:
    """The newest revision of a Hugging Face cache entry that holds a pipeline."""
    snapshots = sorted(
        (s for s in (repo / "snapshots").glob("*") if (s / "model_index.json").is_file()),
        key=lambda s: s.stat().st_mtime,
    )
    return snapshots[-1] if snapshots else None


def library_model_local_path(model: LibraryModel) -> Path | None:
    """Where ``model``'s files are on this machine, found by its name in this machine's own
    MODELS_DIR or Hugging Face cache (the path the scan recorded is the scanning machine's:
    in a cluster each worker has its own disk); None when this machine does not have it."""
    if model.layout == LibraryModel.Layout.HF_CACHE:
        repo = Path(hf_constants.HF_HUB_CACHE) / ("models--" + model.name.replace("/", "--"))
        return _newest_snapshot(repo)
    path = Path(settings.MODELS_DIR) / model.name
    return path if path.exists() else None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file())


def _fingerprint(files: list[Path]) -> tuple[int, float]:
    stats = [f.stat() for f in files]
    return sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=0.0)


def _sha256(path: Path, files: list[Path]) -> str:
    """Of the file; of a folder, its weight files' names and bytes in order."""
    digest = hashlib.sha256()
    weights = files if path.is_file() else [f for f in files if f.suffix == ".safetensors"]
    for file in weights:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _probe(item: _Found) -> Probe:
    if item.kind == LibraryModel.Kind.LORA:
        return Probe(probe_lora(item.path), False, LibraryModel.Layout.SINGLE_FILE)
    if item.kind == LibraryModel.Kind.CONTROLNET:
        return Probe(probe_controlnet(item.path), False, LibraryModel.Layout.DIFFUSERS)
    if item.kind == LibraryModel.Kind.IP_ADAPTER:
        return Probe(probe_ip_adapter(item.path)[0], False, LibraryModel.Layout.DIFFUSERS)
    if item.kind == LibraryModel.Kind.MASK:
        try:
            family = selection.probe_mask_model(item.path)
        except selection.Unsupported as exc:
            raise Unsupported(str(exc)) from None
        layout = LibraryModel.Layout.TRANSFORMERS
        if item.path.is_file():
            layout = LibraryModel.Layout.SINGLE_FILE
        return Probe(family, False, layout)
    if item.kind == LibraryModel.Kind.UPSCALER:
        found = superres.probe(item.path)  # reads the weights: an upscaler is small
        details = {"architecture": found.architecture, "scale": found.scale}
        family = SUPER_RESOLUTION
        return Probe(family, False, LibraryModel.Layout.SINGLE_FILE, details)
    return probe(item.path)


def library_scan() -> ScanReport:
    """Record every model under ``MODELS_DIR`` and in the Hugging Face cache, every LoRA under
    ``LORAS_DIR``, every ControlNet under ``CONTROLNETS_DIR``, every mask model under
    ``MASK_MODELS_DIR`` and every upscaler under ``UPSCALERS_DIR``; mark the rows whose files
    are gone as not present; keep one default model (see ``_ensure_default``)."""
    report = ScanReport()
    seen: set[tuple[str, str]] = set()
    found_items = _candidates(Path(settings.MODELS_DIR), Path(hf_constants.HF_HUB_CACHE))
    found_items += _kind_candidates(Path(settings.LORAS_DIR), LibraryModel.Kind.LORA)
    found_items += _kind_candidates(Path(settings.CONTROLNETS_DIR), LibraryModel.Kind.CONTROLNET)
    found_items += _kind_candidates(Path(settings.IP_ADAPTERS_DIR), LibraryModel.Kind.IP_ADAPTER)
    found_items += _kind_candidates(Path(settings.MASK_MODELS_DIR), LibraryModel.Kind.MASK)
    found_items += _kind_candidates(Path(settings.UPSCALERS_DIR), LibraryModel.Kind.UPSCALER)
    for item in found_items:
        try:
            found = _probe(item)
        except Unsupported as exc:
            report.refused.append((item.label, str(exc)))
            continue
        except OSError as exc:
            report.refused.append((item.label, f"could not be read: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 - a hostile file must not end the scan
            logger.exception("model library: probing %s failed", item.label)
            report.refused.append((item.label, f"could not be read ({type(exc).__name__})."))
            continue
        files = _files(item.path)
        size, modified = _fingerprint(files)
        row = LibraryModel.objects.filter(kind=item.kind, name=item.name).first()
        same = row is not None and (row.path, row.size_bytes, row.modified) == (
            str(item.path),
            size,
            modified,
        )
        fields = {
            "path": str(item.path),
            "family": found.family,
            "inpainting": found.inpainting,
            "layout": LibraryModel.Layout.HF_CACHE if item.hf_cache else found.layout,
            "details": found.details,
            "size_bytes": size,
            "modified": modified,
            "sha256": row.sha256 if same else _sha256(item.path, files),
            "present": True,
        }
        LibraryModel.objects.update_or_create(kind=item.kind, name=item.name, defaults=fields)
        seen.add((item.kind, item.name))
        (report.unchanged if same else report.updated if row else report.added).append(item.label)
    for kind in LibraryModel.Kind:
        names = [name for seen_kind, name in seen if seen_kind == kind]
        gone = LibraryModel.objects.filter(kind=kind, present=True).exclude(name__in=names)
        names_gone = gone.values_list("name", flat=True)
        report.missing += sorted(FOLDER_OF[kind] + name for name in names_gone)
        gone.update(present=False)
    report.default = _ensure_default()
    for name, why in report.refused:
        logger.warning("model library: %s refused: %s", name, why)
    return report


@transaction.atomic
def _ensure_default() -> str | None:
    """The default model: the one staff chose while it is usable, else ``SD_INPAINT_MODEL``
    when the library has it, else the first inpainting model that does not edit by words
    (an edit model is for edits: staff may still make it the default), else the first
    inpainting model, else the first model (among the models that can run here, see
    ``library_model_runnable``)."""
    usable = [
        m
        for m in LibraryModel.objects.checkpoints()
        .select_for_update()
        .filter(enabled=True, present=True)
        if library_model_runnable(m)
    ]
    current = next((m for m in usable if m.is_default), None)
    if current is not None:
        return current.name
    configured = {settings.SD_INPAINT_MODEL, Path(settings.SD_INPAINT_MODEL).name}
    choice = (
        next((m for m in usable if m.name in configured), None)
        or next((m for m in usable if m.inpainting and not FAMILIES[m.family].edits), None)
        or next((m for m in usable if m.inpainting), None)
        or next(iter(usable), None)
    )
    LibraryModel.objects.filter(is_default=True).update(is_default=False)
    if choice is None:
        return None
    LibraryModel.objects.filter(pk=choice.pk).update(is_default=True)
    return choice.name


@transaction.atomic
def library_model_set_default(*, model: LibraryModel) -> None:
    """Make ``model`` the default (enabling it); the previous default stops being one. Only a
    diffusion model that the last scan found and that can run here can be the default."""
    if model.kind != LibraryModel.Kind.CHECKPOINT:
        raise ClientError(
            f"{model.name} is a {model.get_kind_display()}; only a diffusion model can be the "
            "default."
        )
    if not model.present:
        raise ClientError(f"{model.name} was not found by the last scan.")
    if not library_model_runnable(model):
        raise ClientError(
            f"{model.name} is a single-file checkpoint whose pipeline configuration is not "
            "in MODEL_CONFIGS_DIR, so it cannot run here, nor be the default."
        )
    LibraryModel.objects.filter(is_default=True).exclude(pk=model.pk).update(is_default=False)
    LibraryModel.objects.filter(pk=model.pk).update(is_default=True, enabled=True)


def _configs_for(model: LibraryModel) -> Path:
    return config_folder(settings.MODEL_CONFIGS_DIR, Probe(model.family, model.inpainting, ""))


def library_model_runnable(model: LibraryModel) -> bool:
    """Whether a job can run ``model`` here: a folder can; a single-file checkpoint needs the
    pipeline configuration of its family in MODEL_CONFIGS_DIR (loading it is offline)."""
    if model.layout != LibraryModel.Layout.SINGLE_FILE:
        return True
    return (_configs_for(model) / "model_index.json").is_file()


def library_diffusion_on() -> bool:
    """Whether diffusion models run here: the diffusers engine is on (LOAD_SD_INPAINT). Off,
    only a fill engine runs (classical, LaMa: no model, no prompt), so no model list offers a
    checkpoint and a compatible API's model name is not used (``library_model_named``)."""
    return engine_config().load_diffusers


def library_models_offered():
    """The library's diffusion models a job may name now (enabled, found by the last scan,
    the default first); none while diffusion is off. Every model list reads this one rule:
    ``GET /api/models``, the studio's picker, A1111's ``sd-models`` and ``options``, the model
    names ModelsLab and FooocusAPI requests give."""
    models = selectors.library_model_list()
    return models if library_diffusion_on() else models.none()


def library_deployment_model_offered() -> str | None:
    """The deployment's own SD_INPAINT_MODEL while it is what a job runs (diffusion on, no
    library model) and no worker has reported that it could not load it; else None."""
    if not library_diffusion_on() or selectors.library_model_list().exists():
        return None
    status = model_status() or {}
    if status.get("error") and not status.get("loaded"):
        return None
    return engine_config().model_name("diffusers")


def library_models_described(*, offered: bool = True) -> list[dict]:
    """The models as ``GET /api/models`` lists them (``offered``: only what a job may name now,
    see ``library_models_offered``; else every enabled model, for ``manage.py models``), the
    default first, each with the number of live workers serving it now (one read of the
    workers' reports)."""
    served = fleet.models_served()
    models = library_models_offered() if offered else selectors.library_model_list()
    return [
        library_model_describe(m, workers=None if served is None else len(served.get(m.name, [])))
        for m in models
    ]


def library_model_describe(model: LibraryModel, *, workers: int | None) -> dict:
    """A library model as ``GET /api/models`` lists it (``workers``: how many live workers
    serve it, a job for it is a 503 while none does; null when that cannot be read), with
    its family's defaults and what it accepts (``engine.families``)."""
    family = FAMILIES[model.family]
    return {
        "name": model.name,
        "family": model.family,
        "kind": "edits" if family.edits else "inpainting" if model.inpainting else "base",
        "default": model.is_default,
        "layout": model.layout,
        "runnable": library_model_runnable(model),
        "workers": workers,
        "size_bytes": model.size_bytes,
        "sha256": model.sha256,
        "family_label": family.label,
        "defaults": {
            "working_size": family.working_size,
            "num_inference_steps": family.capabilities.default_steps,
            "guidance_scale": family.capabilities.default_guidance,
        },
        "accepts": family.accepts(),
    }


def library_model_for_job(requested: str | None) -> LibraryModel | None:
    """The library model a diffusers job runs: the one it names (enabled and present), else
    the default; None when the library is empty (the deployment's ``SD_INPAINT_MODEL``).
    An unknown or disabled name is a client error that lists the models there are."""
    usable = selectors.library_model_list()
    if requested is None:
        return usable.filter(is_default=True).first()
    model = usable.filter(name=requested).first()
    if model is None:
        raise library_model_missing(requested, field="model")
    if not library_model_runnable(model):
        raise ClientError(
            f"{model.name} is a single-file {model.family} checkpoint, and the pipeline "
            f"configuration it loads with ({_configs_for(model).name}/ in MODEL_CONFIGS_DIR) is "
            "not on this server.",
            field="model",
        )
    return model


def library_model_family(model: LibraryModel | None) -> tuple[str, Family]:
    """The name and family of a diffusers job's model: the library ``model``, or (None) the
    deployment's own SD_INPAINT_MODEL."""
    if model is not None:
        return model.name, FAMILIES[model.family]
    config = engine_config()
    return config.model_name("diffusers"), deployment_family()


def library_job_family(name: str | None) -> Family:
    """The family a diffusers job that names library model ``name`` (None: the default
    model, or the deployment's own) runs."""
    return library_model_family(library_model_for_job(name))[1]


def library_model_missing(requested: str, *, field: str) -> ClientError:
    """The one answer to a job that names a diffusion model this server does not have, on
    every surface: the models there are, and how to install one (the edit models among
    them)."""
    names = ", ".join(
        selectors.library_model_list().order_by("name").values_list("name", flat=True)
    )
    return ClientError(
        f"No model named {echoed(requested)} is installed here (the models: {names or 'none'}; "
        "GET /api/models). To install one, copy its diffusers folder or .safetensors file into "
        "the models folder (MODELS_DIR, data/models/ by default) and run `manage.py models "
        f"scan` (docs/model-library.md); models that edit by words: {library_edit_models_hint()}.",
        field=field,
    )


def library_model_named_check(requested: str | None) -> None:
    """A job that names a model (``model``) this server does not have is refused before
    anything else is decided (``library_model_missing``)."""
    if requested is not None and not selectors.library_model_list().filter(name=requested).exists():
        raise library_model_missing(requested, field="model")


def library_edit_models_hint() -> str:
    """Which library models edit by words (name them in ``model``), or what to install."""
    names = [
        model.name
        for model in library_models_offered()
        if FAMILIES[model.family].edits and library_model_runnable(model)
    ]
    if names:
        return "the edit models here: " + ", ".join(names)
    *others, last = sorted({f.label for f in FAMILIES.values() if f.edits})
    labels = f"{', '.join(others)} or {last}" if others else last
    return f"none is installed: copy a {labels} diffusers folder into the models folder"


def library_default_accepts() -> dict:
    """What the deployment's own SD_INPAINT_MODEL accepts (a job that names no library model
    runs it when the library is empty)."""
    return library_model_family(None)[1].accepts()


def _same_name(library_name: str, given: str) -> bool:
    """How people name a library file: with or without ``.safetensors``, in any case."""

    def bare(name: str) -> str:
        return name.strip().lower().removesuffix(".safetensors")

    return bare(library_name) == bare(given)


def library_model_named(value: str | None, *, field: str) -> str | None:
    """A foreign API's model name (ModelsLab's ``model_id``, FooocusAPI's ``base_model_name``)
    as a library model's name: the model of that name, with or without ``.safetensors``, in
    any case. None when no name is given, when the library is empty (then the deployment's
    own model runs, as those APIs' clients always send some name) or when no diffusion model
    runs (a fill engine runs; its answer's warnings say what was not used). A name the
    library lacks is a client error that lists the models."""
    if not value:
        return None
    models = list(library_models_offered().values_list("name", flat=True))
    if not models:
        return None
    for name in models:
        if _same_name(name, value):
            return name
    raise library_model_missing(value, field=field)


def library_user_checkpoint(user) -> LibraryModel | None:
    """The checkpoint ``user`` chose with AUTOMATIC1111's ``POST /sdapi/v1/options``, while it
    can run (enabled, found by the last scan, runnable here); else None: the default."""
    choice = A1111Options.objects.filter(user=user).select_related("checkpoint").first()
    model = choice.checkpoint if choice else None
    if model is None or not library_models_offered().filter(pk=model.pk).exists():
        return None
    return model if library_model_runnable(model) else None


def library_user_checkpoint_set(user, title: str) -> None:
    """``POST /sdapi/v1/options`` with ``sd_model_checkpoint``: ``user``'s A1111 jobs that
    name no model run ``title`` from now on (the name, with or without A1111's ``[hash]``).
    An unknown model is a client error that lists the models; with an empty library only the
    deployment's model is there (with no diffusion, the fill engine), and choosing it keeps
    the default."""
    name = library_model_named(title, field="sd_model_checkpoint")
    if name is None:
        only = library_deployment_model_offered() or engine_config().fill_engine()
        if title and only and not _same_name(only, title):
            raise ClientError(
                f"Unknown model {echoed(title)}; "
                + (
                    f"the model is: {only}."
                    if library_diffusion_on()
                    else f"no diffusion model runs here, only the {only} fill engine."
                ),
                field="sd_model_checkpoint",
            )
        A1111Options.objects.filter(user=user).delete()
        return
    model = selectors.library_model_list().get(name=name)
    if not library_model_runnable(model):
        raise ClientError(
            f"{name} is a single-file checkpoint whose pipeline configuration is not in "
            "MODEL_CONFIGS_DIR, so it cannot run here.",
            field="sd_model_checkpoint",
        )
    A1111Options.objects.update_or_create(user=user, defaults={"checkpoint": model})


def _lora_named(loras: list[LibraryModel], name: str) -> LibraryModel | None:
    """The LoRA of that name (see ``_same_name``)."""
    return next((lora for lora in loras if _same_name(lora.name, name)), None)


def library_loras_check(params: GenerationParams, model: LibraryModel | None) -> None:
    """Refuse, before queueing, a job whose LoRAs (``loras`` and ``<lora:...>`` tags) are too
    many, out of range, not in the library, or made for another family than ``model``'s."""
    try:
        uses = params.lora_uses
        check_loras(uses)
    except engine.InvalidInput as exc:
        raise ClientError(str(exc), field=exc.field or "loras") from None
    if not uses:
        return
    loras = list(selectors.library_lora_list())
    applied: set[str] = set()
    for name, _ in uses:
        lora = _lora_named(loras, name)
        if lora is None:
            names = ", ".join(lora.name for lora in loras) or "none"
            raise ClientError(
                f"Unknown LoRA {echoed(name)}; the LoRAs are: {names} (GET /api/loras).",
                field="loras",
            )
        _made_for_check("LoRA", lora, model, field="loras")
        if lora.name in applied:
            raise ClientError(
                f"The LoRA {lora.name} is named twice (as {echoed(name)} too); name it once.",
                field="loras",
            )
        applied.add(lora.name)


def library_lora_files(params: GenerationParams) -> tuple[tuple[str, float], ...]:
    """The job's LoRAs as this machine's files with their weights (in LORAS_DIR, by name);
    an ``EngineError`` when one is no longer in the library or not on this disk."""
    loras = list(selectors.library_lora_list())
    files = []
    for name, weight in params.lora_uses:
        lora = _lora_named(loras, name)
        path = Path(settings.LORAS_DIR) / lora.name if lora is not None else None
        if path is None or not path.is_file():
            raise engine.EngineError(
                f"The LoRA {echoed(name)} is not in the library or not on this worker's disk "
                "(LORAS_DIR)."
            )
        files.append((str(path), weight))
    return tuple(files)


def library_loras_described() -> list[dict]:
    """The enabled LoRAs as ``GET /api/loras`` lists them."""
    return [
        {
            "name": lora.name,
            "family": lora.family,
            "size_bytes": lora.size_bytes,
            "sha256": lora.sha256,
        }
        for lora in selectors.library_lora_list()
    ]


def _controlnet_named(name: str) -> LibraryModel | None:
    return selectors.library_controlnet_list().filter(name=name).first()


def library_controlnet_check(params: GenerationParams, model: LibraryModel | None) -> None:
    """Refuse, before queueing, a ControlNet that is not in the library or that was made for
    another family than ``model``'s."""
    if not params.controlnet:
        return
    name = params.controlnet["name"]
    controlnet = _controlnet_named(name)
    if controlnet is None:
        names = ", ".join(selectors.library_controlnet_list().values_list("name", flat=True))
        raise ClientError(
            f"Unknown ControlNet {echoed(name)}; the ControlNets are: {names or 'none'} "
            "(GET /api/controlnets).",
            field="controlnet",
        )
    _made_for_check("ControlNet", controlnet, model, field="controlnet")


def _made_for_check(kind: str, addition: LibraryModel, model: LibraryModel | None, field: str):
    """A LoRA or a ControlNet is made for the chosen model's family (none chosen: any)."""
    if model is not None and addition.family != model.family:
        raise ClientError(
            f"The {kind} {addition.name} is for {addition.family_label}, and the model "
            f"{model.name} is {model.family_label}; choose a {kind} made for it.",
            field=field,
        )


def library_controlnet_use(params: GenerationParams) -> engine.ControlNetUse | None:
    """The job's ControlNet as this machine's folder (in CONTROLNETS_DIR, by name) with its
    settings; an ``EngineError`` when it is no longer in the library or not on this disk."""
    if not params.controlnet:
        return None
    settings_of = {k: v for k, v in params.controlnet.items() if k != "name"}
    name = params.controlnet["name"]
    path = Path(settings.CONTROLNETS_DIR) / name
    if _controlnet_named(name) is None or not (path / "config.json").is_file():
        raise engine.EngineError(
            f"The ControlNet {echoed(name)} is not in the library or not on this worker's disk "
            "(CONTROLNETS_DIR)."
        )
    return engine.ControlNetUse(str(path), **settings_of)


def library_controlnets_described() -> list[dict]:
    """The enabled ControlNets as ``GET /api/controlnets`` lists them."""
    return [
        {"name": c.name, "family": c.family, "size_bytes": c.size_bytes, "sha256": c.sha256}
        for c in selectors.library_controlnet_list()
    ]


# ----- IP-Adapters (a reference picture steering an inpainting model) -------------------------
def _ip_adapter_named(name: str) -> LibraryModel | None:
    return next((a for a in selectors.library_ip_adapter_list() if _same_name(a.name, name)), None)


def library_ip_adapter_name(given: str, *, field: str = "ip_adapter") -> str:
    """The library's name of the IP-Adapter ``given`` names (any case, ModelsLab's ids as the
    folder is named); unknown: a client error that lists the installed ones."""
    adapter = _ip_adapter_named(given)
    if adapter is None:
        names = ", ".join(selectors.library_ip_adapter_list().values_list("name", flat=True))
        raise ClientError(
            f"Unknown IP-Adapter {echoed(given)}; the IP-Adapters here are: {names or 'none'} "
            "(GET /api/ip-adapters; copy one into IP_ADAPTERS_DIR).",
            field=field,
        )
    return adapter.name


def library_ip_adapter_check(
    params: GenerationParams, model: LibraryModel | None, family: Family, references: int
) -> None:
    """Refuse, before queueing, an IP-Adapter that is not installed, made for another family
    than the model's, or without exactly one reference picture; and a reference picture for
    an inpainting model without an IP-Adapter (an edit model reads its own)."""
    if not params.ip_adapter:
        return
    name = library_ip_adapter_name(params.ip_adapter["name"])
    adapter = _ip_adapter_named(name)
    family_name = model.family if model is not None else deployment_family().name
    if adapter.family != family_name:
        raise ClientError(
            f"The IP-Adapter {name} is for {adapter.family_label}, and the model is "
            f"{family.label}; choose one made for it.",
            field="ip_adapter",
        )
    if references != 1:
        raise ClientError(
            f"An IP-Adapter reads one reference picture (reference_images); this request sent "
            f"{references}.",
            field="reference_images",
        )


def library_ip_adapter_use(params: GenerationParams) -> engine.IpAdapterUse | None:
    """The job's IP-Adapter as this machine's folder (in IP_ADAPTERS_DIR, by name) with its
    scale; an ``EngineError`` when it is no longer in the library or not on this disk."""
    if not params.ip_adapter:
        return None
    name = params.ip_adapter["name"]
    path = Path(settings.IP_ADAPTERS_DIR) / name
    try:
        if _ip_adapter_named(name) is None:
            raise Unsupported("not in the library")
        _, weight_name = probe_ip_adapter(path)
    except (Unsupported, OSError):
        raise engine.EngineError(
            f"The IP-Adapter {echoed(name)} is not in the library or not on this worker's disk "
            "(IP_ADAPTERS_DIR)."
        ) from None
    return engine.IpAdapterUse(str(path), weight_name, params.ip_adapter["scale"])


def library_ip_adapters_described() -> list[dict]:
    """The enabled IP-Adapters as ``GET /api/ip-adapters`` lists them."""
    return [
        {"name": a.name, "family": a.family, "size_bytes": a.size_bytes, "sha256": a.sha256}
        for a in selectors.library_ip_adapter_list()
    ]


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
        f"{what}: copy {copy} into MASK_MODELS_DIR "
        f"({settings.MASK_MODELS_DIR}) and run `python manage.py models scan` "
        "(GET /api/mask-models lists what is installed).",
        field="model",
        status=503,
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
        bare = requested.strip().lower().removesuffix(".onnx")
        model = next((m for m in usable if m.name.lower().removesuffix(".onnx") == bare), None)
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
            what = " or ".join(selection.FAMILY_LABELS[f] for f in families)
            hints = [MASK_MODEL_HINTS[f] for f in families]
            if method == "text":
                hints[-1] += " with " + MASK_MODEL_HINTS[selection.GROUNDING_DINO]
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


def library_upscaler_named(value: str) -> LibraryModel | None:
    """The enabled upscaler a client names, by its file's name or its name without the
    suffix (AUTOMATIC1111's lists name upscalers so), in any case; None when there is none."""

    def bare(name: str) -> str:
        name = name.strip().lower()
        for suffix in superres.WEIGHT_SUFFIXES:
            name = name.removesuffix(suffix)
        return name

    wanted = bare(value)
    return next((m for m in selectors.library_upscaler_list() if bare(m.name) == wanted), None)


def library_upscaler_checked(name: str | None) -> str:
    """The upscaler a job names, as the job records it: a resampler (default lanczos), or an
    enabled upscaler of the library by its file's name, with or without the suffix; a 400
    that says where the list is otherwise."""
    name = (name or "lanczos").strip()
    if name.lower() in upscale.RESAMPLERS:
        return name.lower()
    model = library_upscaler_named(name)
    if model is not None:
        return model.name
    raise ClientError(
        f"No upscaler called {echoed(name)}: GET /api/upscalers lists them (lanczos and nearest "
        "need no weights; a super-resolution model goes into UPSCALERS_DIR).",
        field="upscaler",
    )


def library_upscaler_local_path(name: str) -> Path | None:
    """Where the upscaler ``name`` is on this machine (UPSCALERS_DIR, by name: in a cluster
    each worker has its own disk), or None."""
    path = Path(settings.UPSCALERS_DIR) / name
    return path if path.is_file() else None


def library_upscalers_described() -> list[dict]:
    """The upscalers a job may name, as ``GET /api/upscalers`` lists them: the resamplers
    (no weights), then the library's super-resolution models with their architecture and
    scale."""
    resamplers = [
        {"name": name, "kind": "resampler", "architecture": None, "scale": None}
        for name in upscale.RESAMPLERS
    ]
    return resamplers + [
        {
            "name": m.name,
            "kind": "model",
            "architecture": m.details.get("architecture"),
            "scale": m.details.get("scale"),
            "size_bytes": m.size_bytes,
            "sha256": m.sha256,
        }
        for m in selectors.library_upscaler_list()
    ]
