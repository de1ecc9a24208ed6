"""What a diffusion model takes beside its prompt, from the library: LoRAs, ControlNets,
IP-Adapters and erase adapters (names checked against the library, made for the job's
model's family, and found on this worker's disk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import User

from .. import engine, selectors
from ..engine.families import FAMILIES, Family
from ..engine.parameters import check_loras
from ..engine.probe import (
    Unsupported,
    probe_eraser,
    probe_ip_adapter,
)
from ..errors import ClientError, echoed
from ..models import LibraryModel
from ..params import GenerationParams
from .library import same_name


@dataclass(frozen=True)
class _Kind:
    """One kind of addition: how it is named in messages, listed, and where a worker keeps it."""

    label: str  # "LoRA"
    listing: str  # the endpoint that lists them
    folder: str  # the setting naming this machine's folder
    listed: Callable[..., QuerySet[LibraryModel]]  # (user=None): what ``user`` may use


LORA = _Kind("LoRA", "/api/loras", "LORAS_DIR", selectors.library_lora_list)
CONTROLNET = _Kind(
    "ControlNet", "/api/controlnets", "CONTROLNETS_DIR", selectors.library_controlnet_list
)
IP_ADAPTER = _Kind(
    "IP-Adapter", "/api/ip-adapters", "IP_ADAPTERS_DIR", selectors.library_ip_adapter_list
)


def _named(kind: _Kind, name: str, among: list[LibraryModel] | None = None) -> LibraryModel | None:
    """The addition of that name (see ``same_name``), among ``among`` or the enabled ones."""
    found = among if among is not None else kind.listed()
    return next((addition for addition in found if same_name(addition.name, name)), None)


def _unknown(kind: _Kind, given: str, field: str, user: User | None) -> ClientError:
    names = ", ".join(kind.listed(user).values_list("name", flat=True)) or "none"
    return ClientError(
        f"Unknown {kind.label} {echoed(given)}; the {kind.label}s here are: {names} "
        f"(GET {kind.listing}).",
        field=field,
        operator=f"To add one: copy it into {kind.folder} and run `manage.py models scan`.",
    )


def _found(
    kind: _Kind, given: str, field: str, user: User | None, among: list[LibraryModel] | None = None
) -> LibraryModel:
    """The addition ``given`` names that ``user`` may use: unknown, a 400 that lists the ones
    here; not given to ``user``, a 403."""
    addition = _named(kind, given, among)
    if addition is None:
        raise _unknown(kind, given, field, user)
    _access_check(kind, addition, field, user)
    return addition


def _access_check(kind: _Kind, addition: LibraryModel, field: str, user: User | None) -> None:
    """``user``'s groups give them ``addition`` (``models.GroupAccess``): else a 403 that names
    only the ones they may use."""
    if selectors.access_of(user).allows(addition):
        return
    names = ", ".join(kind.listed(user).values_list("name", flat=True)) or "none"
    raise ClientError(
        f"The {kind.label} {addition.name} is not one you may use here (yours: {names}; GET "
        f"{kind.listing}). Ask the server's staff for access.",
        field=field,
        status=403,
    )


def _not_on_disk(kind: _Kind, given: str) -> engine.EngineError:
    return engine.EngineError(
        f"The {kind.label} {echoed(given)} is not in the library or not on this worker's disk "
        f"({kind.folder})."
    )


def _described(kind: _Kind, user: User | None) -> list[dict]:
    """The enabled additions of a kind (that ``user`` may use) as its listing endpoint
    answers them."""
    return [
        {"name": a.name, "family": a.family, "size_bytes": a.size_bytes, "sha256": a.sha256}
        for a in kind.listed(user)
    ]


def _made_for_check(
    kind: _Kind, addition: LibraryModel, model: str, family: Family, field: str
) -> None:
    """An addition is made for the family of the model it runs with."""
    if addition.family != family.name:
        raise ClientError(
            f"The {kind.label} {addition.name} is for {addition.family_label}, and the model "
            f"{model} is {family.label}; choose a {kind.label} made for it.",
            field=field,
        )


def _planned_rows(kind: _Kind, ids: list[int]) -> dict[int, LibraryModel]:
    """The enabled additions of a kind with these library ids (one query, by id)."""
    return {row.pk: row for row in kind.listed().filter(pk__in=ids)} if ids else {}


def _planned_folder(
    kind: _Kind, planned: dict, probe: Callable[[Path], tuple[str, Any]]
) -> tuple[Path, Any]:
    """A planned folder addition on this machine (in its kind's folder, by the library's name
    of its id now) and what ``probe`` reads of it beside its family; an ``EngineError`` when
    it is no longer in the library or not on this disk."""
    addition = _planned_rows(kind, [planned["id"]]).get(planned["id"])
    if addition is None:
        raise _not_on_disk(kind, planned["name"])
    path = Path(getattr(settings, kind.folder)) / addition.name
    try:
        return path, probe(path)[1]
    except (Unsupported, OSError):
        raise _not_on_disk(kind, planned["name"]) from None


# ----- LoRAs ----------------------------------------------------------------------------------
def library_loras_planned(
    params: GenerationParams, model: LibraryModel | None, user: User | None = None
) -> list[dict]:
    """A job's LoRAs (``loras`` and ``<lora:...>`` tags) as its plan keeps them (library id,
    name, weight); refused, before queueing, when too many, out of range, not in the library,
    not given to ``user``, named twice, or made for another family than ``model``'s (none
    chosen: any)."""
    uses = params.lora_uses
    check_loras(uses)
    if not uses:
        return []
    loras = list(LORA.listed())
    planned: list[dict] = []
    for name, weight in uses:
        lora = _found(LORA, name, "loras", user, loras)
        if model is not None:
            _made_for_check(LORA, lora, model.name, FAMILIES[model.family], "loras")
        if any(use["id"] == lora.pk for use in planned):
            raise ClientError(
                f"The LoRA {lora.name} is named twice (as {echoed(name)} too); name it once.",
                field="loras",
            )
        planned.append({"id": lora.pk, "name": lora.name, "weight": weight})
    return planned


def _lora_files(planned: list[dict]) -> tuple[tuple[str, float], ...]:
    """The planned LoRAs as this machine's files with their weights (in LORAS_DIR, by the
    library's name of each id now)."""
    rows = _planned_rows(LORA, [use["id"] for use in planned])
    files = []
    for use in planned:
        lora = rows.get(use["id"])
        path = Path(settings.LORAS_DIR) / lora.name if lora is not None else None
        if path is None or not path.is_file():
            raise _not_on_disk(LORA, use["name"])
        files.append((str(path), use["weight"]))
    return tuple(files)


def library_loras_described(user: User | None = None) -> list[dict]:
    """The enabled LoRAs (that ``user`` may use) as ``GET /api/loras`` lists them."""
    return _described(LORA, user)


# ----- ControlNets ----------------------------------------------------------------------------
def library_controlnet_planned(
    params: GenerationParams, model: LibraryModel | None, user: User | None = None
) -> dict:
    """A job's ControlNet as its plan keeps it (library id, name, settings; none: empty);
    refused, before queueing, when not in the library, not given to ``user`` or made for
    another family than ``model``'s (none chosen: any)."""
    if not params.controlnet:
        return {}
    controlnet = _found(CONTROLNET, params.controlnet["name"], "controlnet", user)
    if model is not None:
        _made_for_check(CONTROLNET, controlnet, model.name, FAMILIES[model.family], "controlnet")
    return {**params.controlnet, "id": controlnet.pk, "name": controlnet.name}


def _controlnet_use(planned: dict) -> engine.ControlNetUse | None:
    """The planned ControlNet as this machine's folder (in CONTROLNETS_DIR) with its settings."""
    if not planned:
        return None
    controlnet = _planned_rows(CONTROLNET, [planned["id"]]).get(planned["id"])
    path = Path(settings.CONTROLNETS_DIR) / controlnet.name if controlnet is not None else None
    if path is None or not (path / "config.json").is_file():
        raise _not_on_disk(CONTROLNET, planned["name"])
    settings_of = {k: v for k, v in planned.items() if k not in ("id", "name")}
    return engine.ControlNetUse(str(path), **settings_of)


def library_controlnets_described(user: User | None = None) -> list[dict]:
    """The enabled ControlNets (that ``user`` may use) as ``GET /api/controlnets`` lists
    them."""
    return _described(CONTROLNET, user)


# ----- IP-Adapters (a reference picture steering an inpainting model) -------------------------
def library_ip_adapter_name(
    given: str, *, field: str = "ip_adapter", user: User | None = None
) -> str:
    """The library's name of the IP-Adapter ``given`` names (any case, ModelsLab's ids as the
    folder is named); unknown: a client error that lists the installed ones (``user``'s)."""
    adapter = _named(IP_ADAPTER, given)
    if adapter is None:
        raise _unknown(IP_ADAPTER, given, field, user)
    return adapter.name


def library_ip_adapter_planned(
    params: GenerationParams, model: str, family: Family, references: int, user: User | None = None
) -> dict:
    """A job's IP-Adapter as its plan keeps it (library id, name, scale; none: empty);
    refused, before queueing, when not installed, made for another family than the job's
    model's (``model`` of ``family``: the library's or the deployment's), or without exactly
    one reference picture."""
    if not params.ip_adapter:
        return {}
    adapter = _found(IP_ADAPTER, params.ip_adapter["name"], "ip_adapter", user)
    _made_for_check(IP_ADAPTER, adapter, model, family, "ip_adapter")
    if references != 1:
        raise ClientError(
            f"An IP-Adapter reads one reference picture (reference_images); this request sent "
            f"{references}.",
            field="reference_images",
        )
    return {"id": adapter.pk, "name": adapter.name, "scale": params.ip_adapter["scale"]}


def _ip_adapter_use(planned: dict) -> engine.IpAdapterUse | None:
    """The planned IP-Adapter as this machine's folder (in IP_ADAPTERS_DIR) with its scale."""
    if not planned:
        return None
    path, weight_name = _planned_folder(IP_ADAPTER, planned, probe_ip_adapter)
    return engine.IpAdapterUse(str(path), weight_name, planned["scale"])


def library_ip_adapters_described(user: User | None = None) -> list[dict]:
    """The enabled IP-Adapters (that ``user`` may use) as ``GET /api/ip-adapters`` lists
    them."""
    return _described(IP_ADAPTER, user)


# ----- Erase adapters (erase mode on an edit model: ``plan.erase_plan`` chooses one) ---------
ERASER = _Kind("erase adapter", "/api/models", "ERASERS_DIR", selectors.library_eraser_list)


def _eraser_use(planned: dict) -> engine.EraserUse | None:
    """The planned erase adapter as this machine's folder (in ERASERS_DIR): its LoRA file and
    its prompt embedding or instruction, read again from the folder (``probe_eraser``)."""
    if not planned:
        return None
    path, found = _planned_folder(ERASER, planned, probe_eraser)
    embedding = found["embedding"]
    return engine.EraserUse(
        str(path / found["lora"]),
        str(path / embedding) if embedding else None,
        found["instruction"],
    )


# ----- A job's plan run on a worker -----------------------------------------------------------
def planned_uses(planned: dict) -> dict:
    """The additions a job's plan (``Generation.plan``) names, as this machine's files for
    the engine's request (``loras``, ``controlnet``, ``ip_adapter``, ``eraser``), found by
    library id: an addition renamed since the job was queued still runs. One no longer in the
    library (or disabled) or not on this disk is an ``EngineError``."""
    return {
        "loras": _lora_files(planned.get("loras", [])),
        "controlnet": _controlnet_use(planned.get("controlnet", {})),
        "ip_adapter": _ip_adapter_use(planned.get("ip_adapter", {})),
        "eraser": _eraser_use(planned.get("eraser", {})),
    }
