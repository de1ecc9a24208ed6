"""The library's layer models (Qwen-Image-Layered folders, ``engine.splitting``): names
checked, described for ``GET /api/layer-models``."""

from __future__ import annotations

from .. import selectors
from ..errors import ClientError, echoed
from ..models import LibraryModel
from .library import same_name


def library_layer_model_checked(name: str | None) -> LibraryModel:
    """The layer model a split names (its folder's name, any case), else the first enabled
    one; a 400 naming the list, or saying that none is installed, otherwise."""
    models = list(selectors.library_layer_model_list())
    if name:
        found = next((m for m in models if same_name(m.name, name)), None)
        if found is None:
            raise ClientError(
                f"No layer model called {echoed(name)}: GET /api/layer-models lists them.",
                field="model",
            )
        return found
    if not models:
        raise ClientError(
            "No layer model is installed, so a picture cannot be split into layers here.",
            field="model",
            operator="Copy the Qwen/Qwen-Image-Layered diffusers folder into LAYER_MODELS_DIR "
            "and run `manage.py models scan`.",
        )
    return models[0]


def library_layer_models_described() -> list[dict]:
    """The layer models, as ``GET /api/layer-models`` lists them."""
    return [
        {"name": m.name, "family": m.family, "size_bytes": m.size_bytes, "sha256": m.sha256}
        for m in selectors.library_layer_model_list()
    ]
