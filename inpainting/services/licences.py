"""Licences of models: the starter list's table of them (``starter_models.toml``: each
licence's name, address and whether it allows commercial use, and the Hugging Face tags that
name them), the licence a library model is under, and the one rule that refuses a
non-commercial model where ALLOW_NONCOMMERCIAL_MODELS is off: at install (a starter entry, a
model card's tag) and at every job (a model copied in by hand of a family whose models all
are under one licence: ``Family.licence``)."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from ..engine.families import FAMILIES
from ..errors import ClientError
from ..models import LibraryModel

STARTERS_FILE = Path(__file__).resolve().parent.parent / "starter_models.toml"


@dataclass(frozen=True)
class Licence:
    key: str
    name: str
    url: str
    commercial: bool | None  # None: not known (read it)

    def describe(self) -> dict:
        return asdict(self)


@functools.cache
def catalogue() -> dict:
    """The starter list: its ``[licences]``, ``[licence_tags]`` and ``[[models]]``."""
    with STARTERS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def licence_of(tag: str) -> Licence:
    """The licence a starter entry names (a key of ``[licences]``) or a model card's tag
    (mapped by ``[licence_tags]``; another tag is shown as written, non-commercial when its
    name says so)."""
    table = catalogue()
    key = table["licence_tags"].get(tag, tag)
    known = table["licences"].get(key)
    if known is not None:
        return Licence(key, known["name"], known["url"], known["commercial"])
    words = set(re.split(r"[^a-z]+", tag.lower()))
    non_commercial = "nc" in words or "noncommercial" in words or "non" in words
    return Licence(tag, tag or "not stated", "", False if non_commercial else None)


def licence_allowed(licence: Licence) -> bool:
    return licence.commercial is not False or settings.ALLOW_NONCOMMERCIAL_MODELS


def licence_refusal(what: str, licence: Licence) -> str:
    """Why ``what`` (a model, a repository) is refused here, naming its licence."""
    return (
        f"{what} is under the {licence.name}, which does not allow commercial use, and this "
        "deployment refuses such models (ALLOW_NONCOMMERCIAL_MODELS=false)."
    )


def model_licence_tag(model: LibraryModel) -> str | None:
    """The licence a library model is under, as written: as its install found it (a starter
    entry's key, a model card's tag), else its family's where every model of the family is
    under one (``Family.licence``); None: not known."""
    family = FAMILIES.get(model.family)
    return model.licence or (family.licence if family else None)


def model_licence(model: LibraryModel) -> Licence | None:
    """The licence ``model_licence_tag`` names, or None."""
    tag = model_licence_tag(model)
    return licence_of(tag) if tag else None


def model_allowed(model: LibraryModel) -> bool:
    """Whether a job may run ``model`` under this deployment's licence rule."""
    licence = model_licence(model)
    return licence is None or licence_allowed(licence)


def model_licence_check(model: LibraryModel, field: str = "model") -> None:
    """A job may run ``model`` (``model_allowed``): else a 403 that names its licence."""
    licence = model_licence(model)
    if licence is not None and not licence_allowed(licence):
        raise ClientError(licence_refusal(model.name, licence), field=field, status=403)
