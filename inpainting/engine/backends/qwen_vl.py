"""The processor Qwen-Image-Edit's text encoder (Qwen2.5-VL), Bria FIBO 2.0's and
Qwen-Image-2.1's (Qwen3-VL) read the prompt and the pictures with, built from the model
folder's ``processor/`` without torchvision.

transformers' ``Qwen2VLProcessor`` has a video half whose class needs torchvision (none exists
for the CPU build of torch this deployment pins), and it refuses to be built without one even
when no video is ever given. The edit pipelines give pictures only, so the processor here is
the same class with the image and text halves alone: its pictures go through transformers' own
PIL image processor for Qwen2-VL (the same resize to multiples of 28 px, normalisation and
14 px patches as the torchvision one), its words through the folder's tokenizer. Where
torchvision is installed, diffusers loads the folder's own processor as usual.

Imported where a Qwen pipeline loads (transformers is heavy)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from transformers import AutoTokenizer, ProcessorMixin, Qwen2VLProcessor, Qwen3VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from ..families import index_file


def _picture_tokens(processor: ProcessorMixin, tokenizer) -> None:
    """The picture and video markers a Qwen-VL processor reads, by the tokenizer's ids."""
    for name, default in (
        ("image", "<|image_pad|>"),
        ("video", "<|video_pad|>"),
        ("vision_start", "<|vision_start|>"),
        ("vision_end", "<|vision_end|>"),
    ):
        token = getattr(tokenizer, f"{name}_token", None) or default
        setattr(processor, f"{name}_token", token)
        setattr(processor, f"{name}_token_id", tokenizer.convert_tokens_to_ids(token))


class PictureProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` with no video processor: pictures and words only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _picture_tokens(self, tokenizer)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class Qwen3PictureProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` (Qwen3-VL: 16 px patches) with no video processor, as above."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        _picture_tokens(self, tokenizer)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


#: The picture-only processor for the processor class a folder's pipeline index (or its
#: picture preprocessing) names.
_PROCESSORS = {"Qwen3VLProcessor": Qwen3PictureProcessor}


def processor_parts(folder: Path, part: str = "processor", subfolder: str | None = None) -> dict:
    """The ``part`` (a processor) for ``from_pretrained`` of the pipeline in ``folder``: built
    here from ``folder/<subfolder or part>`` where torchvision is missing (Qwen3-VL's where the
    folder's pipeline index names it, else Qwen2-VL's); nothing (the folder's own) where it is
    installed or the folder has no such part. FLUX.3 [klein]'s ``tokenizer`` and its prompt
    upsampler's processor are Qwen3-VL processors too; an index that names only
    ``AutoProcessor`` leaves it to the folder's ``preprocessor_config.json``."""
    source = Path(folder) / (subfolder or part)
    index = index_file(Path(folder))
    if importlib.util.find_spec("torchvision") is not None or not source.is_dir() or not index:
        return {}
    named = json.loads(index.read_text()).get(part) or []
    preprocessing = source / "preprocessor_config.json"
    said = json.loads(preprocessing.read_text()) if preprocessing.is_file() else {}
    candidates = (named[1] if len(named) > 1 else "", said.get("processor_class", ""))
    kind = next((_PROCESSORS[c] for c in candidates if c in _PROCESSORS), PictureProcessor)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    images = Qwen2VLImageProcessorPil.from_pretrained(source, local_files_only=True)
    template = _chat_template(source) or tokenizer.chat_template
    return {part: kind(image_processor=images, tokenizer=tokenizer, chat_template=template)}


def _chat_template(source: Path) -> str | None:
    """The processor's chat template as its folder holds it (``chat_template.jinja``, or
    ``chat_template.json`` as Qwen publish Qwen3-VL's), which Qwen-Image-2.1's pipeline writes
    its system message with; None where it has neither."""
    jinja, packed = source / "chat_template.jinja", source / "chat_template.json"
    if jinja.is_file():
        return jinja.read_text()
    if packed.is_file():
        return json.loads(packed.read_text()).get("chat_template")
    return None
