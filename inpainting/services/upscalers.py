"""The library's upscalers (super-resolution files): names checked, found on this disk,
described for the pages and the compatible APIs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from accounts.models import User

from .. import selectors
from ..engine import superres, upscale
from ..errors import ClientError, echoed
from ..models import LibraryModel
from .library import same_name


def library_upscaler_named(value: str, user: User | None = None) -> LibraryModel | None:
    """The enabled upscaler a client names (that ``user`` may use), by its file's name or its
    name without the suffix (AUTOMATIC1111's lists name upscalers so), in any case; None when
    there is none."""
    return next(
        (
            m
            for m in selectors.library_upscaler_list(user)
            if same_name(m.name, value, superres.WEIGHT_SUFFIXES)
        ),
        None,
    )


def library_upscaler_checked(name: str | None, user: User | None = None) -> str:
    """The upscaler a job of ``user`` names, as the job records it: a resampler (default
    lanczos), or an enabled upscaler of the library by its file's name, with or without the
    suffix; a 403 for one their groups do not give them, a 400 that says where the list is
    otherwise."""
    name = (name or "lanczos").strip()
    if name.lower() in upscale.RESAMPLERS:
        return name.lower()
    model = library_upscaler_named(name, user)
    if model is not None:
        return model.name
    if library_upscaler_named(name) is not None:
        raise ClientError(
            f"The upscaler {echoed(name)} is not one you may use here (GET /api/upscalers lists "
            "yours). Ask the server's staff for access.",
            field="upscaler",
            status=403,
        )
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


def library_upscalers_described(user: User | None = None) -> list[dict]:
    """The upscalers a job (of ``user``) may name, as ``GET /api/upscalers`` lists them: the
    resamplers (no weights), then the library's super-resolution models with their
    architecture and scale."""
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
        for m in selectors.library_upscaler_list(user)
    ]
