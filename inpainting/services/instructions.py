"""An instruction without a mask and without an edit model ("remove the cup", "replace the sky
with a sunset"): the thing it names is selected by the selection models of the library (SAM 3,
or GroundingDINO with SAM 2.1, in the selection worker), and that selection becomes the job's
mask: a removal when the instruction removes, else an inpainting of the rest of the words.
The job's metadata says which mask it used (``mask_source``); the mask is stored with the job,
so its regenerated-area picture and its re-run are those of any masked job."""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass

import numpy as np
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from ..conf import engine_config
from ..engine import selection
from ..errors import ClientError, cut
from ..params import GenerationParams
from .mask_models import MaskModelMissing, library_mask_model_for
from .selection import selection_make

#: The instructions understood, in order: (pattern, whether it removes). ``thing`` is what is
#: selected; ``new`` what is painted there.
_LEAD = r"^(?:please\s+)?"
_PATTERNS = (
    (rf"{_LEAD}(?:remove|erase|delete|take\s+out|take\s+away|get\s+rid\s+of)\s+(?P<thing>.+?)"
     r"(?:\s+from\s+(?:the|this)\s+(?:picture|photo|image))?$", True),
    (rf"{_LEAD}(?:replace|swap)\s+(?P<thing>.+?)\s+(?:with|by|for)\s+(?P<new>.+)$", False),
    (rf"{_LEAD}(?:change|turn)\s+(?P<thing>.+?)\s+(?:into|to)\s+(?P<new>.+)$", False),
)  # fmt: skip
#: What a selection mask's pixels are here: white is regenerated.
MASK_MODE = "white_inpaints"


@dataclass(frozen=True)
class Instruction:
    thing: str  # what to select ("the cup")
    new: str  # what to paint there ("" removes)

    @property
    def removes(self) -> bool:
        return not self.new


def instruction_parse(prompt: str) -> Instruction | None:
    """The thing an instruction names and what it asks for there, or None when the prompt is
    not one of the instructions understood (it then describes content, as for inpainting)."""
    text = " ".join(prompt.split()).rstrip(".!")
    for pattern, removes in _PATTERNS:
        found = re.match(pattern, text, re.IGNORECASE)
        if found:
            thing = found["thing"].strip()
            return Instruction(thing, "" if removes else found["new"].strip()) if thing else None
    return None


@dataclass(frozen=True)
class FromInstruction:
    """A mask-less job turned into a masked one: its mask file, its parameters (the prompt of
    what is painted; a removal runs the removal engine) and what its metadata records."""

    mask_file: SimpleUploadedFile
    params: GenerationParams
    mask_source: dict


def instruction_to_mask(
    *, user, image_file, params: GenerationParams, cannot: str
) -> FromInstruction:
    """Select what the prompt's instruction names on the image and make it the job's mask.
    ``cannot``: why the request needs a mask otherwise (the start of each error). A 400 when
    the prompt is not an instruction understood, when no selection model is installed (the
    message names what to add) or when nothing matched; the selection's own limits and
    errors otherwise. The image file is left at its start."""
    instruction = instruction_parse(params.prompt)
    if instruction is None:
        raise ClientError(
            f"{cannot}, or an instruction that names a thing to select ('remove the cup', "
            "'replace the sky with a sunset') with a selection model installed.",
            field="mask",
        )
    try:
        choice = library_mask_model_for("text", None)
    except MaskModelMissing as exc:
        raise ClientError(
            f"A mask is required: paint one or send one. Turning '{cut(params.prompt.strip())}' "
            "into a mask needs a selection model that selects by words, and none is installed "
            "here; the server's staff can add one.",
            field="mask",
            operator=f"{cannot}. {exc.message} {exc.operator}",
        ) from None
    try:
        found = async_to_sync(selection_make)(
            user=user,
            image_file=image_file,
            method="text",
            model=choice.model.name,
            prompt=selection.Prompt(text=instruction.thing),
            mask_mode=MASK_MODE,
        )
    finally:
        image_file.seek(0)
    if not np.asarray(Image.open(io.BytesIO(found.png))).any():
        raise ClientError(
            f"{found.model} found nothing matching '{instruction.thing}' in the picture: "
            "name it otherwise, or paint a mask.",
            field="prompt",
        )
    changed = {
        "prompt": instruction.new,
        "mask_mode": MASK_MODE,
        "mask_alpha": "transparent",
        "invert_mask": False,
    }
    if instruction.removes:  # the removal engine: no model, no prompt
        changed.update(engine=engine_config().removal_engine(), model=None)
    return FromInstruction(
        mask_file=SimpleUploadedFile("selection.png", found.png, "image/png"),
        params=dataclasses.replace(params, **changed),
        mask_source={
            "method": "instruction",
            "instruction": params.prompt.strip(),
            "selected": instruction.thing,
            "removal": instruction.removes,
            "model": found.model,
        },
    )
