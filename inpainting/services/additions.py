"""What a diffusion model takes beside its prompt, from the library: LoRAs, ControlNets and
IP-Adapters (names checked against the library, made for the job's model's family, and
found on this worker's disk)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .. import engine, selectors
from ..conf import deployment_family
from ..engine.families import Family
from ..engine.parameters import check_loras
from ..engine.probe import (
    Unsupported,
    probe_ip_adapter,
)
from ..errors import ClientError, echoed
from ..models import LibraryModel
from ..params import GenerationParams
from .library import same_name


def _lora_named(loras: list[LibraryModel], name: str) -> LibraryModel | None:
    """The LoRA of that name (see ``same_name``)."""
    return next((lora for lora in loras if same_name(lora.name, name)), None)


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
    return next((a for a in selectors.library_ip_adapter_list() if same_name(a.name, name)), None)


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
