"""The model library: what this deployment has, recorded by a scan of ``MODELS_DIR``
(single-file ``.safetensors`` checkpoints and diffusers folders, and the folders of the other
kinds) and of the Hugging Face cache, each probed for its family without loading it
(``engine.probe``); and the diffusion models: the default, what the pages offer, which one a
job runs and the one rule for matching a name (``same_name``). The other kinds' rules are
their own modules: ``additions`` (LoRAs, ControlNets, IP-Adapters), ``mask_models``,
``upscalers``."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.db import transaction
from huggingface_hub import constants as hf_constants

from accounts.models import User

from .. import fleet, selectors
from ..conf import deployment_family, diffusion_read_forget, engine_config, model_status
from ..engine import memory, selection, superres
from ..engine.families import FAMILIES, Family, index_file
from ..engine.probe import (
    PICKLE_SUFFIXES,
    Probe,
    Unsupported,
    config_folder,
    probe,
    probe_controlnet,
    probe_eraser,
    probe_ip_adapter,
    probe_lora,
    weight_parts,
)
from ..engine.splitting import probe_layer_model
from ..errors import ClientError, echoed
from ..models import SUPER_RESOLUTION, Generation, LibraryModel
from .licences import model_allowed, model_licence_check, model_licence_tag
from .queue import send_turn

logger = logging.getLogger(__name__)

#: Folders of MODELS_DIR that hold other kinds of file (pipeline configurations; a later
#: issue's LoRAs, ControlNets).
OTHER_KINDS = frozenset(
    {"loras", "controlnets", "ip-adapters", "masks", "configs", "layers", "erasers"}
)
_HASH_CHUNK = 8 * 1024 * 1024


@dataclass
class ScanReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)  # "old -> new": the row followed its file
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
    LibraryModel.Kind.LAYERS: "layers/",
    LibraryModel.Kind.ERASER: "erasers/",
}


#: The setting that names each kind's folder (the scan reads it, an install writes into it).
_FOLDER_SETTING = {
    LibraryModel.Kind.CHECKPOINT: "MODELS_DIR",
    LibraryModel.Kind.LORA: "LORAS_DIR",
    LibraryModel.Kind.CONTROLNET: "CONTROLNETS_DIR",
    LibraryModel.Kind.IP_ADAPTER: "IP_ADAPTERS_DIR",
    LibraryModel.Kind.MASK: "MASK_MODELS_DIR",
    LibraryModel.Kind.UPSCALER: "UPSCALERS_DIR",
    LibraryModel.Kind.LAYERS: "LAYER_MODELS_DIR",
    LibraryModel.Kind.ERASER: "ERASERS_DIR",
}


#: The weights files each kind of model is kept as: the one table the scan and the installer
#: read. The scan finds a pickle of any kind too, and refuses it with the reason.
WEIGHTS_SUFFIXES = {
    LibraryModel.Kind.CHECKPOINT: (".safetensors", ".gguf"),
    LibraryModel.Kind.LORA: (".safetensors",),
    LibraryModel.Kind.CONTROLNET: (".safetensors",),
    LibraryModel.Kind.IP_ADAPTER: (".safetensors",),
    LibraryModel.Kind.MASK: (".safetensors", ".onnx"),
    LibraryModel.Kind.UPSCALER: (".safetensors", ".pth"),
    LibraryModel.Kind.LAYERS: (".safetensors",),
    LibraryModel.Kind.ERASER: (".safetensors",),  # its LoRA and its prompt embedding
}


def is_weights_file(name: str, kind: str) -> bool:
    """Whether a file of this name is a weights file a model of ``kind`` is kept as."""
    return Path(name).suffix.lower() in WEIGHTS_SUFFIXES[kind]


def library_folder(kind: str) -> Path:
    """Where the library keeps the models of ``kind``."""
    return Path(getattr(settings, _FOLDER_SETTING[kind]))


def _kind_candidates(root: Path, kind: str) -> list[_Found]:
    """The entries of a LoRA, ControlNet, IP-Adapter, mask model, upscaler or layer model
    folder that may be one: the kind's weights files (WEIGHTS_SUFFIXES) and pickles (refused
    with the reason), for ControlNets, IP-Adapters, mask models and layer models folders
    too."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        weights = is_weights_file(path.name, kind) or suffix in PICKLE_SUFFIXES
        folders = kind in (
            LibraryModel.Kind.CONTROLNET,
            LibraryModel.Kind.IP_ADAPTER,
            LibraryModel.Kind.MASK,
            LibraryModel.Kind.LAYERS,
            LibraryModel.Kind.ERASER,
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
            checkpoint = is_weights_file(path.name, LibraryModel.Kind.CHECKPOINT)
            if path.is_file() and (checkpoint or suffix in PICKLE_SUFFIXES):
                found.append(_Found(path.name, path))
            elif path.is_dir() and index_file(path) is not None:
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
        (s for s in (repo / "snapshots").glob("*") if index_file(s) is not None),
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


def weights_sha256(path: Path, files: list[Path] | None = None) -> str:
    """The one hasher of model files: of a file, its bytes; of a folder, its weight files'
    names and bytes in order (``files``: the folder's files, when already listed)."""
    files = files if files is not None else _files(path)
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
    if item.kind == LibraryModel.Kind.LAYERS:
        return Probe(probe_layer_model(item.path), False, LibraryModel.Layout.DIFFUSERS)
    if item.kind == LibraryModel.Kind.ERASER:
        family, details = probe_eraser(item.path)
        return Probe(family, False, LibraryModel.Layout.ADAPTER, details)
    if item.kind == LibraryModel.Kind.UPSCALER:
        found = superres.probe(item.path)  # reads the weights: an upscaler is small
        details = {"architecture": found.architecture, "scale": found.scale}
        family = SUPER_RESOLUTION
        return Probe(family, False, LibraryModel.Layout.SINGLE_FILE, details)
    found = probe(item.path)
    parts = weight_parts(item.path, FAMILIES[found.family])
    details = {**found.details, "parts": asdict(parts)}
    return Probe(found.family, found.inpainting, found.layout, details)


def library_scan() -> ScanReport:
    """Record every model under ``MODELS_DIR`` and in the Hugging Face cache, every LoRA under
    ``LORAS_DIR``, every ControlNet under ``CONTROLNETS_DIR``, every mask model under
    ``MASK_MODELS_DIR`` and every upscaler under ``UPSCALERS_DIR``; mark the rows whose files
    are gone as not present; keep one default model (see ``_ensure_default``)."""
    report = ScanReport()
    seen: set[tuple[str, str]] = set()
    kinds = [kind for kind in LibraryModel.Kind if kind != LibraryModel.Kind.CHECKPOINT]
    found_items = _candidates(Path(settings.MODELS_DIR), Path(hf_constants.HF_HUB_CACHE))
    for kind in kinds:
        found_items += _kind_candidates(library_folder(kind), kind)
    for item in found_items:
        try:
            outcome = _record(item)
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
        seen.add((item.kind, item.name))
        if outcome.startswith("renamed from "):
            old = FOLDER_OF[item.kind] + outcome.removeprefix("renamed from ")
            report.renamed.append(f"{old} -> {item.label}")
        else:
            getattr(report, outcome).append(item.label)
    for kind in LibraryModel.Kind:
        names = [name for seen_kind, name in seen if seen_kind == kind]
        gone = LibraryModel.objects.filter(kind=kind, present=True).exclude(name__in=names)
        names_gone = gone.values_list("name", flat=True)
        report.missing += sorted(FOLDER_OF[kind] + name for name in names_gone)
        gone.update(present=False)
    report.default = _ensure_default()
    diffusion_read_forget()  # a model added or gone: diffusion on or off in this process now
    for name, why in report.refused:
        logger.warning("model library: %s refused: %s", name, why)
    return report


def _moved_here(kind: str, sha256: str) -> LibraryModel | None:
    """The row of a file or folder renamed to a new name: of the same kind and weights, its
    own path gone. It follows the file (its id, its settings, the jobs planned with it)."""
    rows = LibraryModel.objects.filter(kind=kind, sha256=sha256).order_by("pk")
    return next((row for row in rows if not Path(row.path).exists()), None)


def _record(item: _Found, sha256: str | None = None) -> str:
    """Probe ``item`` and write its row: "added", "updated", "unchanged" or "renamed from
    <old name>" (a file or folder renamed: the row takes its new name, its id kept).
    ``sha256``: its digest where already known (an install that checked the file as it landed:
    a 24 GB file is read once). Raises the probe's ``Unsupported`` (with the reason) or
    ``OSError``."""
    found = _probe(item)
    files = _files(item.path)
    size, modified = _fingerprint(files)
    row = LibraryModel.objects.filter(kind=item.kind, name=item.name).first()
    if row is None:
        sha256 = sha256 or weights_sha256(item.path, files)
        moved = _moved_here(item.kind, sha256)
        if moved is not None:
            LibraryModel.objects.filter(pk=moved.pk).update(name=item.name)
            _record(item, sha256)
            # Its queued jobs' messages wait in the old name's queue, which no worker reads
            # now: a turn of the new one each (a spare turn finds the queue empty).
            queued = Generation.objects.filter(status=Generation.Status.QUEUED)
            for job in queued.filter(library_model_id=moved.pk):
                send_turn(job)
            return f"renamed from {moved.name}"
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
        "sha256": row.sha256 if same else sha256 or weights_sha256(item.path, files),
        "present": True,
    }
    LibraryModel.objects.update_or_create(kind=item.kind, name=item.name, defaults=fields)
    return "unchanged" if same else "updated" if row else "added"


def library_scan_item(*, kind: str, path: Path, sha256: str | None = None) -> LibraryModel:
    """Record the one file or folder at ``path`` (of ``kind``, in that kind's folder), as the
    whole scan would (an install's last step; ``sha256``: its digest, where the install has
    it); the default is kept. Raises ``Unsupported`` with the reason the scan would report."""
    _record(_Found(path.name, path, kind=kind), sha256)
    diffusion_read_forget()
    _ensure_default()
    return LibraryModel.objects.get(kind=kind, name=path.name)


def library_model_remove(*, model: LibraryModel) -> int:
    """Delete ``model``'s files on this machine (its file or folder in its kind's folder, or
    its Hugging Face cache entry) and its row; the default moves to another model if it was
    this one. Returns the bytes freed."""
    if model.layout == LibraryModel.Layout.HF_CACHE:
        path = Path(hf_constants.HF_HUB_CACHE) / ("models--" + model.name.replace("/", "--"))
    else:
        path = library_folder(model.kind) / model.name
    freed = 0
    if path.exists() or path.is_symlink():
        freed = _fingerprint(_files(path))[0] if path.exists() else 0
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    model.delete()
    _ensure_default()
    return freed


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
            f"{model.name} is a {LibraryModel.Kind(model.kind).label}; only a diffusion model "
            "can be the default."
        )
    if not model.present:
        raise ClientError(f"{model.name} was not found by the last scan.")
    library_model_runnable_check(model)  # a model no job can run is no default
    LibraryModel.objects.filter(is_default=True).exclude(pk=model.pk).update(is_default=False)
    LibraryModel.objects.filter(pk=model.pk).update(is_default=True, enabled=True)


def _configs_for(model: LibraryModel) -> Path:
    return config_folder(settings.MODEL_CONFIGS_DIR, Probe(model.family, model.inpainting, ""))


def library_model_runnable(model: LibraryModel) -> bool:
    """Whether a job can run ``model`` here: its licence allows it on this deployment
    (``licences.model_allowed``); then a folder can; a single-file checkpoint (or a GGUF
    transformer) needs the pipeline configuration of its family in MODEL_CONFIGS_DIR, or for
    a transformer alone an installed diffusers model of its family (``library_companion``) to
    take the other parts from (loading it is offline)."""
    if not model_allowed(model):
        return False
    if model.layout not in (LibraryModel.Layout.SINGLE_FILE, LibraryModel.Layout.GGUF):
        return True
    if (_configs_for(model) / "model_index.json").is_file():
        return True
    return library_companion(model) is not None


def library_diffusion_on() -> bool:
    """Whether diffusion models run here: the diffusers engine is on (LOAD_SD_INPAINT). Off,
    only a fill engine runs (classical, LaMa: no model, no prompt), so no model list offers a
    checkpoint and a compatible API's model name is not used (``library_model_named``)."""
    return engine_config().load_diffusers


def library_models_offered(user: User | None = None):
    """The library's diffusion models a job may name now (enabled, found by the last scan,
    the default first; those ``user`` may run, ``selectors.access_of``); none while diffusion
    is off. Every model list reads this one rule: ``GET /api/models``, the studio's picker,
    A1111's ``sd-models`` and ``options``, the model names ModelsLab and FooocusAPI requests
    give."""
    models = selectors.library_model_list(user)
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


def library_only_engine() -> tuple[str, bool] | None:
    """What a job that names no model runs when the library offers none, as the model lists
    name it: the deployment's own model (``False``), or with no diffusion model the fill
    engine (``True``: it takes no prompt); None when the deployment's model could not be
    loaded (a worker said so)."""
    deployment = library_deployment_model_offered()
    if deployment:
        return deployment, False
    fill = engine_config().fill_engine()
    return (fill, True) if fill else None


def library_models_described(*, offered: bool = True, user: User | None = None) -> list[dict]:
    """The models as ``GET /api/models`` lists them (``offered``: only what a job may name now,
    see ``library_models_offered``; else every enabled model, for ``manage.py models``; of
    them, what ``user`` may run), the default first, each with the number of live workers
    serving it now (one read of the workers' reports)."""
    served = fleet.models_served()
    models = library_models_offered(user) if offered else selectors.library_model_list(user)
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
        "licence": model_licence_tag(model),
        "quantization": model.details.get("quantization"),
        # The GPU memory each memory plan needs (GB, engine.memory), from the parts' sizes.
        "memory_gb": library_model_memory(model),
        "family_label": family.label,
        "defaults": {
            "working_size": family.working_size,
            "num_inference_steps": family.capabilities.default_steps,
            "guidance_scale": family.capabilities.default_guidance,
        },
        "accepts": family.accepts(),
    }


def library_companion(model: LibraryModel) -> str | None:
    """For a transformer alone (a FLUX single file, a GGUF): the folder of an installed
    diffusers model of the same family and variant whose other parts (text encoders, VAE) it
    runs with, on this machine; None for any other model, or when there is none (the
    family's folder in MODEL_CONFIGS_DIR is used then)."""
    found = _companion(model)
    return str(found[1]) if found else None


def _companion(model: LibraryModel) -> tuple[LibraryModel, Path] | None:
    if model.layout not in (LibraryModel.Layout.SINGLE_FILE, LibraryModel.Layout.GGUF):
        return None
    if FAMILIES[model.family].single_file_denoiser is None:
        return None
    folders = LibraryModel.objects.checkpoints().filter(
        family=model.family,
        inpainting=model.inpainting,
        present=True,
        layout__in=(LibraryModel.Layout.DIFFUSERS, LibraryModel.Layout.HF_CACHE),
    )
    for folder in folders.order_by("name"):
        path = library_model_local_path(folder)
        if path is not None:
            return folder, path
    return None


def library_model_memory(model: LibraryModel) -> dict[str, float] | None:
    """The GPU memory (GB) each memory plan needs for ``model`` with this deployment's
    headroom; None when the scan recorded no part sizes (a model scanned before they were)."""
    parts = model.details.get("parts")
    if not parts:
        return None
    parts = memory.Parts(**parts)
    companion = _companion(model)
    if companion is not None:  # a transformer alone runs with the companion's other parts
        theirs = companion[0].details.get("parts") or {}
        parts = replace(
            parts,
            text_encoders=parts.text_encoders + theirs.get("text_encoders", 0),
            other=parts.other + theirs.get("other", 0),
        )
    return memory_needs_gb(parts)


def memory_needs_gb(parts: memory.Parts) -> dict[str, float]:
    """The GPU memory (GB) each memory plan needs for weights of ``parts`` with this
    deployment's headroom (MODEL_MEMORY_HEADROOM_GB): the one figure the library, the admin and
    the starter list show for a diffusion model."""
    headroom = int(settings.MODEL_MEMORY_HEADROOM_GB * 1024**3)
    needs = memory.needs_by_plan(parts, headroom)
    return {plan: round(need / 1e9, 1) for plan, need in needs.items()}


def memory_words(needs: dict[str, float]) -> str:
    """``memory_needs_gb`` for people: all on the GPU, and the least any plan short of
    sequential offload needs ("36.9 GB (from 14.1 GB)")."""
    least = min(gb for plan, gb in needs.items() if plan != memory.SEQUENTIAL)
    return f"{needs[memory.GPU]:g} GB (from {least:g} GB)"


def library_model_for_job(requested: str | None, user: User | None = None) -> LibraryModel | None:
    """The library model a diffusers job of ``user`` runs: the one it names (enabled and
    present), else the default (where the user may not run it, the first they may); None
    when the library is empty (the deployment's ``SD_INPAINT_MODEL``). An unknown or disabled
    name is a client error that lists the models there are; a model the user may not run, a
    403 (``library_model_forbidden``)."""
    usable = selectors.library_model_list()
    if requested is None:
        default = usable.filter(is_default=True).first()
        if default is None or selectors.access_of(user).allows(default):
            return default
        mine = selectors.library_model_list(user).first()
        if mine is None:  # said without the default's name: not one the user may see
            raise ClientError(
                "No diffusion model here is one you may run; ask the server's staff for access.",
                field="model",
                status=403,
            )
        return mine
    model = usable.filter(name=requested).first()
    if model is None:
        raise library_model_missing(requested, field="model", user=user)
    if not selectors.access_of(user).allows(model):
        raise library_model_forbidden(requested, field="model", user=user)
    return model


def library_model_runnable_check(model: LibraryModel, field: str = "model") -> None:
    """A job can run ``model`` here (``library_model_runnable``): else a client error that
    names the licence that refuses it (a 403), or says what its single file needs."""
    model_licence_check(model, field=field)
    if library_model_runnable(model):
        return
    companion = (
        f", nor an installed {FAMILIES[model.family].label} diffusers model to take its "
        "other parts from"
        if FAMILIES[model.family].single_file_denoiser
        else ""
    )
    raise ClientError(
        f"{model.name} is a single-file {model.family} checkpoint, and the pipeline "
        f"configuration it loads with ({_configs_for(model).name}/ in MODEL_CONFIGS_DIR) is "
        f"not on this server{companion}.",
        field=field,
    )


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


def library_model_missing(requested: str, *, field: str, user: User | None = None) -> ClientError:
    """The one answer to a job that names a diffusion model this server does not have, on
    every surface: the models there are (that ``user`` may run), and how to install one
    (the edit models among them)."""
    names = _names_for(user)
    return ClientError(
        f"No model named {echoed(requested)} is installed here (the models: {names or 'none'}; "
        f"GET /api/models); models that edit by words: {library_edit_models_hint(user)}. Name one "
        "of them, or ask the server's staff to install it.",
        field=field,
        operator="To install one: `manage.py models install <Hugging Face repo id or URL>` or "
        "the admin's Model installs page, or copy its diffusers folder or .safetensors file "
        "into the models folder (MODELS_DIR, data/models/ by default) and run `manage.py "
        "models scan` (docs/model-library.md).",
    )


def _names_for(user: User | None) -> str:
    """The names of the diffusion models ``user`` may run, for a message."""
    return ", ".join(
        selectors.library_model_list(user).order_by("name").values_list("name", flat=True)
    )


def library_model_forbidden(requested: str, *, field: str, user: User | None) -> ClientError:
    """The one answer to a job of ``user`` naming a model (or, naming none, finding the
    default) that their groups do not give them (``models.GroupAccess``): a 403 that names
    only what they may run."""
    names = _names_for(user)
    return ClientError(
        f"The model {echoed(requested)} is not one you may run here (the models you may run: "
        f"{names or 'none'}; GET /api/models). Ask the server's staff for access.",
        field=field,
        status=403,
    )


def library_edit_models_hint(user: User | None = None) -> str:
    """Which library models edit by words (name them in ``model``; those ``user`` may run),
    or what to install."""
    names = [
        model.name
        for model in library_models_offered(user)
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


def bare_name(name: str, suffixes: tuple[str, ...] = (".safetensors",)) -> str:
    """A library file's name as people give it: in any case, without its file suffix."""
    name = name.strip().lower()
    for suffix in suffixes:
        name = name.removesuffix(suffix)
    return name


def same_name(library_name: str, given: str, suffixes: tuple[str, ...] = (".safetensors",)) -> bool:
    """How people name a library file: with or without its suffix (``suffixes``: the file
    kinds of its library), in any case. Every lookup of a library file by a client's name."""
    return bare_name(library_name, suffixes) == bare_name(given, suffixes)


def library_model_named(value: str | None, *, field: str, user: User | None = None) -> str | None:
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
        if same_name(name, value):
            return name  # the job's plan checks that ``user`` may run it
    raise library_model_missing(value, field=field, user=user)
