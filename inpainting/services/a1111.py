"""AUTOMATIC1111's per-user state: the checkpoint a user chose with ``POST /sdapi/v1/options``
and the options they wrote there that DreamLayer keeps without acting on them (a client reads
them back as it wrote them)."""

from __future__ import annotations

import json

from .. import selectors
from ..conf import engine_config
from ..errors import ClientError, echoed
from ..models import A1111Options, LibraryModel
from .library import (
    library_deployment_model_offered,
    library_diffusion_on,
    library_model_forbidden,
    library_model_named,
    library_model_runnable,
    library_model_runnable_check,
    library_models_offered,
    same_name,
)


def a1111_checkpoint(user) -> LibraryModel | None:
    """The checkpoint ``user`` chose with AUTOMATIC1111's ``POST /sdapi/v1/options``, while it
    can run (enabled, found by the last scan, runnable here); else None: the default."""
    choice = A1111Options.objects.filter(user=user).select_related("checkpoint").first()
    model = choice.checkpoint if choice else None
    if model is None or not library_models_offered(user).filter(pk=model.pk).exists():
        return None
    return model if library_model_runnable(model) else None


def a1111_checkpoint_set(user, title: str) -> None:
    """``POST /sdapi/v1/options`` with ``sd_model_checkpoint``: ``user``'s A1111 jobs that
    name no model run ``title`` from now on (the name, with or without A1111's ``[hash]``).
    An unknown model is a client error that lists the models; with an empty library only the
    deployment's model is there (with no diffusion, the fill engine), and choosing it keeps
    the default."""
    name = library_model_named(title, field="sd_model_checkpoint", user=user)
    if name is None:
        only = library_deployment_model_offered() or engine_config().fill_engine()
        if title and only and not same_name(only, title):
            raise ClientError(
                f"Unknown model {echoed(title)}; "
                + (
                    f"the model is: {only}."
                    if library_diffusion_on()
                    else f"no diffusion model runs here, only the {only} fill engine."
                ),
                field="sd_model_checkpoint",
            )
        A1111Options.objects.filter(user=user).update(checkpoint=None)
        return
    model = selectors.library_model_list().get(name=name)
    if not selectors.access_of(user).allows(model):
        raise library_model_forbidden(title, field="sd_model_checkpoint", user=user)
    library_model_runnable_check(model, field="sd_model_checkpoint")
    A1111Options.objects.update_or_create(user=user, defaults={"checkpoint": model})


#: The most one user's kept AUTOMATIC1111 options may take, as JSON.
A1111_OPTIONS_MAX_BYTES = 64 * 1024


def a1111_options(user) -> dict:
    """The AUTOMATIC1111 options ``user`` wrote that DreamLayer keeps without acting on them
    (``POST /sdapi/v1/options``; a client reads them back as it wrote them)."""
    row = A1111Options.objects.filter(user=user).first()
    return dict(row.values) if row else {}


def a1111_options_keep(user, options: dict) -> None:
    """Keep ``options`` (the checkpoint apart: ``a1111_checkpoint_set``) for ``user``,
    over what they wrote before, within A1111_OPTIONS_MAX_BYTES."""
    values = {
        **a1111_options(user),
        **{k: v for k, v in options.items() if k != "sd_model_checkpoint"},
    }
    if "\\u0000" in json.dumps(values):  # PostgreSQL keeps no NUL character in JSON
        raise ClientError(
            "An option's name or value contains a NUL character; none is kept.", field="options"
        )
    size = len(json.dumps(values))
    if size > A1111_OPTIONS_MAX_BYTES:
        raise ClientError(
            f"The options would take {size // 1024} KB; at most "
            f"{A1111_OPTIONS_MAX_BYTES // 1024} KB are kept per user.",
            field="options",
        )
    A1111Options.objects.update_or_create(user=user, defaults={"values": values})
