"""Diffusers' modular pipelines (FLUX.3 [klein]: blocks, not one pipeline class) run as the
backend runs the others: ``load`` builds one from a model folder's parts, and ``ModularPipe``
takes the call a diffusers pipeline takes (the words, the pictures, the size, the steps, a
generator per call, ``callback_on_step_end`` for progress, previews and cancel), and the
memory plans' placements.

What differs from the pipeline classes, and what is done about it:
- A published folder's ``modular_model_index.json`` names each part by its Hub repository
  (the prompt upsampler by another one). Here every part loads from the folder itself, its
  subfolder of the same name, offline: a part the folder lacks is an error that names it,
  except the prompt upsampler, which is published apart and runs only where the folder
  holds it (``prompt_upsampler/``); without it the words are encoded as given.
- The denoising loop takes no callback: a block of DreamLayer's (``StepEnd``) ends each
  step, calling the job's.
- The pipeline has no mask: the words go with a layout box (the mask's bounding box, the
  region the words describe), as the prompt upsampler's input, or, without it, in the
  caption the upsampler would write (the words citing the box, then the box table).

Imported where a modular model loads (torch and diffusers are heavy)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import diffusers
import torch
from diffusers.hooks import apply_group_offloading
from diffusers.modular_pipelines.flux3.prompt_upsampler import boxes_to_canvas
from diffusers.modular_pipelines.modular_pipeline import ModularPipelineBlocks
from diffusers.modular_pipelines.modular_pipeline_utils import InputParam
from PIL import Image

from ..families import Family
from ..types import EngineError
from .qwen_vl import processor_parts

#: The part a folder may hold (published apart): the prompt upsampler.
UPSAMPLER = "prompt_upsampler"
#: The most words (tokens) the prompt upsampler writes: Black Forest Labs' figure.
UPSAMPLER_TOKENS = 3584
#: The id of the layout box a masked edit's words describe.
REGION = "region_1"


class StepEnd(ModularPipelineBlocks):
    """The last block of each denoising step: the call's ``callback_on_step_end`` with the
    step's latents, as a diffusers pipeline calls it (progress, previews, cancel)."""

    model_name = "flux3"

    @property
    def description(self) -> str:
        return "Calls callback_on_step_end(pipeline, step, timestep, {'latents': ...})."

    @property
    def inputs(self) -> list[InputParam]:
        return [InputParam("callback_on_step_end", description="Called after each step.")]

    @property
    def intermediate_outputs(self) -> list:
        return []

    def __call__(self, components: Any, block_state: Any, i: int, t: Any) -> tuple:
        callback = block_state.callback_on_step_end
        if callback is not None:
            steps = SimpleNamespace(num_timesteps=len(block_state.timesteps))
            callback(steps, i, t, {"latents": block_state.latents})
        return components, block_state


def _denoise_loops(blocks: Any) -> list[Any]:
    """The denoising loops of ``blocks`` (one per branch of its auto denoise step)."""
    denoise = blocks.sub_blocks["denoise"]
    branches = getattr(denoise, "sub_blocks", {})
    return [branch.sub_blocks["denoise"] for branch in branches.values()]


def load(
    folder: Path, family: Family, dtype: Any, parts: dict[str, Any] | None = None
) -> ModularPipe:
    """``family``'s modular pipeline with every part loaded from ``folder`` in ``dtype`` but
    ``parts``, built elsewhere (the GPU kit's random weights in a published configuration)."""
    pipeline_class = getattr(diffusers, family.pipeline)
    blocks = getattr(diffusers, pipeline_class.default_blocks_name)()
    upsampler = (folder / UPSAMPLER).is_dir()
    if not upsampler:
        blocks.sub_blocks.pop(UPSAMPLER)
    for loop in _denoise_loops(blocks):
        loop.sub_blocks.insert("dreamlayer_step_end", StepEnd(), len(loop.sub_blocks))
    pipe = blocks.init_pipeline(str(folder))
    built = processor_parts(folder, part="tokenizer")  # without torchvision: built here
    if upsampler:
        built |= processor_parts(folder, part=f"{UPSAMPLER}_processor", subfolder=UPSAMPLER)
    built |= parts or {}
    if built:
        pipe.update_components(**built)
    wanted = [
        name
        for name, spec in pipe._component_specs.items()
        if spec.default_creation_method == "from_pretrained" and name not in built
    ]
    for name in wanted:
        part = name.removesuffix("_processor") if name.startswith(UPSAMPLER) else name
        pipe.load_components(
            names=[name],
            pretrained_model_name_or_path=str(folder),
            subfolder=part,
            local_files_only=True,
            dtype=dtype,
        )
    missing = [name for name in wanted if getattr(pipe, name, None) is None]
    if missing:
        raise EngineError(
            f"{folder.name}: the {family.label} folder has no loadable {', '.join(missing)} "
            "(each part in its subfolder, safetensors weights)."
        )
    return ModularPipe(pipe, upsampler=upsampler)


class ModularPipe:
    """A modular pipeline called, placed and measured as a diffusers pipeline class is."""

    def __init__(self, pipe: Any, *, upsampler: bool) -> None:
        object.__setattr__(self, "pipe", pipe)
        object.__setattr__(self, "upsampler", upsampler)

    def __getattr__(self, name: str) -> Any:  # its parts and the rest: the pipeline's
        return getattr(self.pipe, name)

    def __setattr__(self, name: str, value: Any) -> None:  # a part replaced (compiled)
        self.pipe.update_components(**{name: value})

    @property
    def components(self) -> dict[str, Any]:
        return {name: part for name, part in self.pipe.components.items() if part is not None}

    def set_progress_bar_config(self, **settings: Any) -> None:
        for loop in _denoise_loops(self.pipe._blocks):  # ``blocks`` gives a copy
            loop.set_progress_bar_config(**settings)

    def to(self, device: Any) -> ModularPipe:
        self.pipe.to(device)
        return self

    def enable_group_offload(
        self, onload_device: Any, offload_type: str, use_stream: bool, exclude_modules=()
    ) -> None:
        """Each part but ``exclude_modules`` kept on the CPU and brought to ``onload_device``
        piece by piece as it runs (diffusers' group offloading, on a CUDA stream where asked
        and the device has one); those on the device."""
        onload_device = torch.device(onload_device)
        use_stream = use_stream and onload_device.type == "cuda"
        for name, part in self.components.items():
            if not isinstance(part, torch.nn.Module):
                continue
            if name in exclude_modules:
                part.to(onload_device)
                continue
            apply_group_offloading(
                part,
                onload_device=onload_device,
                offload_type=offload_type,
                num_blocks_per_group=1 if offload_type == "block_level" else None,
                use_stream=use_stream,
            )

    def enable_model_cpu_offload(self, device: Any) -> None:
        """Each part on the GPU one block at a time (a modular pipeline has no hooks that move
        a whole part at once)."""
        self.enable_group_offload(device, "block_level", False)

    def enable_sequential_cpu_offload(self, device: Any) -> None:
        self.enable_group_offload(device, "leaf_level", False)

    def __call__(
        self,
        *,
        prompt: str,
        image: Any,
        height: int,
        width: int,
        num_inference_steps: int,
        generator: Any,
        guidance_scale: float = 1.0,
        negative_prompt: str | None = None,
        mask_box: Image.Image | None = None,
        callback_on_step_end: Any = None,
        callback_on_step_end_tensor_inputs: Any = None,
        output_type: str = "pil",
    ) -> SimpleNamespace:
        """One call: ``image`` (the picture it edits first, then the references), the words
        placed in ``mask_box``'s bounding box where one is given; ``output_type`` "latent":
        the latents (a warm-up's)."""
        arguments: dict[str, Any] = {}
        if self.upsampler:
            arguments["max_new_tokens"] = UPSAMPLER_TOKENS
        if negative_prompt is not None:
            arguments["negative_prompt"] = negative_prompt
        guider = self.components.get("guider")
        if guider is not None:
            guider.guidance_scale = guidance_scale
        if mask_box is not None:
            boxes = [layout_box(mask_box, prompt)]
            if self.upsampler:
                arguments["boxes"] = boxes
            else:
                prompt = layout_caption(prompt, boxes)
        latent = output_type == "latent"
        answer = self.pipe(
            prompt=prompt,
            image=image,
            height=height,
            width=width,
            num_inference_steps=num_inference_steps,
            generator=generator,
            callback_on_step_end=callback_on_step_end,
            output_type="pil" if latent else output_type,
            output=["latents" if latent else "images", "prompt"],
            **arguments,
        )
        said = {"prompt_upsampler": self.upsampler}
        if self.upsampler:  # what the model read: the upsampler's caption
            said["caption"] = answer["prompt"]
        return SimpleNamespace(images=answer["latents" if latent else "images"], said=said)


def layout_box(mask: Image.Image, words: str) -> dict[str, Any]:
    """The layout box of the region ``mask`` marks (white: regenerate): its bounding box,
    [y_min, x_min, y_max, x_max] in 0-1 of the picture, new content the words describe."""
    left, top, right, bottom = mask.point(lambda v: 255 if v > 127 else 0).getbbox() or (
        0,
        0,
        *mask.size,
    )
    width, height = mask.size
    return {
        "id": REGION,
        "from": "target",
        "tgt_bbox": [top / height, left / width, bottom / height, right / width],
        "desc": words.strip(),
    }


def layout_caption(words: str, boxes: list[dict]) -> str:
    """The caption FLUX.3 reads for ``words`` placed in ``boxes``, as its prompt upsampler
    writes one: the instruction citing each box by its id, a closing clause that the rest
    stays as it is, then the box table on its 0-1000 canvas."""
    rows = boxes_to_canvas(boxes)
    cited = " ".join(f"<{row['id']}>" for row in rows)
    return (
        f"{words.strip()} {cited}. Everything else stays identical to the source. "
        f"{json.dumps(rows, ensure_ascii=False)}"
    )
