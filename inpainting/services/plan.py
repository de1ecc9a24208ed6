"""A job's plan: everything it will run, resolved once from the request's names before any
picture is decoded (the engine, the library model and its family, the LoRAs, ControlNet and
IP-Adapter with their settings), with every refusal a name can earn. The row keeps it
(``Generation.library_model``, ``Generation.plan``: the library's ids), and the worker runs
it (``services.additions.planned_uses``) without looking anything up by name: a model or an
addition renamed after the job was queued (its file moved, then scanned) still runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import User

from .. import engine, fleet, selectors
from ..conf import engine_config
from ..engine.families import FAMILIES, Family
from ..errors import ClientError
from ..models import LibraryModel
from ..params import GenerationParams
from . import additions, library


@dataclass(frozen=True)
class JobPlan:
    """What a job runs: its ``engine``; ``model_name`` as its row records it; the library
    ``model`` (None: a fill engine, or the deployment's own SD_INPAINT_MODEL) and the
    ``family`` a diffusion model is of (None for a fill engine); ``additions``, what the
    row's ``plan`` keeps (the additions by library id with their settings)."""

    engine: str
    model_name: str
    model: LibraryModel | None = None
    family: Family | None = None
    additions: dict = field(default_factory=dict)

    @property
    def edits(self) -> bool:
        """Whether the job's model edits the whole picture by its prompt (no mask needed)."""
        return self.family is not None and self.family.edits


def job_plan(params: GenerationParams, references: int = 0, user: User | None = None) -> JobPlan:
    """The plan of a job of ``user`` asking for ``params`` with ``references`` reference
    pictures. A model the request names must be installed and given to the user (checked
    first, whatever engine runs: ``selectors.access_of``); a model, an addition or a
    reference picture given to a fill engine is refused; a diffusion job's model must be
    runnable here, its additions installed, given to the user and made for its model's
    family, and its reference pictures at most what the family (or its IP-Adapter: one)
    reads. ``user`` None (the CLI without ``--user``): everything."""
    named = library.library_model_for_job(params.model, user) if params.model else None
    config = engine_config()
    if params.mode == "erase" and (erasing := erase_plan(params, references, user)):
        return erasing
    engine_name = config.choose(
        params.requested_engine, params.prompt, erase=params.mode == "erase"
    )
    if not engine.runs_a_model(engine_name):
        engine_fields_check(params, engine_name, references)
        return JobPlan(engine_name, config.model_name(engine_name))
    model = named or library.library_model_for_job(None, user)  # None named: the default
    if model is not None:
        library.library_model_runnable_check(model)
    name, family = library.library_model_family(model)
    planned = {
        "loras": additions.library_loras_planned(params, model, user),
        "controlnet": additions.library_controlnet_planned(params, model, user),
        "ip_adapter": additions.library_ip_adapter_planned(params, name, family, references, user),
    }
    if not params.ip_adapter:  # an IP-Adapter's reference picture is its own
        references_check(name, family, references, user)
    return JobPlan(engine_name, name, model, family, {k: v for k, v in planned.items() if v})


def erase_plan(params: GenerationParams, references: int, user: User | None) -> JobPlan | None:
    """Erase mode's best remover, where the server has one: an erase adapter of the library
    (by name) with a model of its family that ``user`` may run and a live worker serves (the
    default model first), on a server whose diffusers engine runs. None (LaMa or the
    classical engine then removes): none installed or served, or the request names an
    engine, a model, additions or reference pictures (``job_plan`` answers those)."""
    config = engine_config()
    if params.requested_engine is not None or references or not engine.DIFFUSERS.ready(config):
        return None
    models = list(selectors.library_model_list(user))
    for eraser in selectors.library_eraser_list(user):
        model = next(
            (
                m
                for m in models
                if m.family == eraser.family
                and library.library_model_runnable(m)
                and fleet.workers_serving(m.name)
            ),
            None,
        )
        if model is not None:
            planned = {"eraser": {"id": eraser.pk, "name": eraser.name}}
            return JobPlan(
                engine.DIFFUSERS.name, model.name, model, FAMILIES[model.family], planned
            )
    return None


def references_check(name: str, family: Family, count: int, user: User | None = None) -> None:
    """``count`` reference pictures for model ``name`` of ``family``: at most what it reads
    (else a 400 naming the edit models ``user`` may run)."""
    if count > family.reference_images:
        raise ClientError(
            f"{name} ({family.label}) reads at most {family.reference_images} reference "
            f"pictures beside the one it edits; this request sent {count}"
            + ("" if family.reference_images else f" ({library.library_edit_models_hint(user)})")
            + (
                "; an inpainting model reads one through an IP-Adapter (ip_adapter, "
                "GET /api/ip-adapters)"
                if family.capabilities.ip_adapter
                else ""
            )
            + ".",
            field="reference_images",
        )


def engine_fields_check(params: GenerationParams, engine_name: str, references: int = 0) -> None:
    """A model, LoRAs, a ControlNet or reference pictures apply to the diffusers engine alone:
    naming one for another engine is a client error, not a silent drop."""
    named = {
        "model": params.model,
        "loras": params.loras,
        "controlnet": params.controlnet,
        "ip_adapter": params.ip_adapter,
        "reference_images": references,
    }
    for name, given in named.items():
        if given:
            raise ClientError(
                f"{name} applies to the diffusers engine; this job asked for {engine_name}.",
                field=name,
            )
