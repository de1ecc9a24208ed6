"""The processor Qwen-Image-Edit's text encoder (Qwen2.5-VL) reads the prompt and the pictures
with, built from the model folder's ``processor/`` without torchvision.

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
from pathlib import Path

from transformers import AutoTokenizer, ProcessorMixin, Qwen2VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil


class PictureProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` with no video processor: pictures and words only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def processor_parts(folder: Path) -> dict:
    """The ``processor`` part for ``from_pretrained`` of the pipeline in ``folder``: built here
    from ``folder/processor`` where torchvision is missing; nothing (the folder's own) where
    it is installed or the folder has no processor."""
    source = Path(folder) / "processor"
    if importlib.util.find_spec("torchvision") is not None or not source.is_dir():
        return {}
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    images = Qwen2VLImageProcessorPil.from_pretrained(source, local_files_only=True)
    return {"processor": PictureProcessor(image_processor=images, tokenizer=tokenizer)}
