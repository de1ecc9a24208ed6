"""What the engine knows of a model family, in one record per family (one module each in
this package): how to recognise its files, which diffusers pipeline inpaints with it, the size
and settings it works best at, which request parameters it uses, and how to preview its
latents. The SD 1.5 and SDXL path reads the same record as FLUX does."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..types import InvalidInput


class Unsupported(InvalidInput):
    """A file or folder that is not a model the engine can run, and why (said to people)."""


#: Where a diffusion transformer's keys start in a single file: at the top (the publishers'
#: packaging) or under ComfyUI's prefix.
TRANSFORMER_PREFIXES = ("", "model.diffusion_model.")

#: ComfyUI's latent-to-RGB factors of each VAE's latent space (comfy/latent_formats.py), by
#: name: one row per latent channel, and the bias.
LATENT_SPACES: dict[str, dict] = json.loads(
    (Path(__file__).resolve().parent / "latent_spaces.json").read_text()
)


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a family's models accept; ``GET /api/models`` and the studio show it, and a job's
    parameters are checked against it (ignored ones named in ``warnings``, out-of-range ones
    refused). What a family does not declare it does not accept."""

    default_steps: int
    max_steps: int
    default_guidance: float
    guidance_range: tuple[float, float]
    negative_prompt: bool = False
    #: The scheduler choice of ``GET /api/schedulers``; False: its own scheduler only.
    schedulers: bool = False
    clip_skip: bool = False
    #: AUTOMATIC1111's (word:1.3) syntax and prompts longer than the text encoder's window.
    prompt_weighting: bool = False
    loras: bool = False
    controlnet: bool = False
    #: The negative prompt counts only with a guidance above this (classifier-free guidance
    #: is off at or below it: 1 for SD and SD 3, 0 for Z-Image).
    negative_prompt_above: float = 1.0
    #: Soft inpainting (differential diffusion): a UNet family whose latents are noised with
    #: its scheduler's ``add_noise`` one step at a time (SD 1.5, SDXL).
    soft_inpainting: bool = False
    #: IP-Adapters (a reference picture steering an inpainting model): the SD UNet families.
    ip_adapter: bool = False
    #: A layered job's regions painted in one pipeline call, each prompt's tokens seen only by
    #: its region's pixels (``BackendCall.regions``); False: the layers run in turn.
    regions: bool = False
    #: False: the guidance is distilled into the steps (FLUX.2 [klein]); a guidance_scale a
    #: request sends is not used, and its answer says so.
    guidance: bool = True
    #: The fast tier (``speed: "fast"``): a transformer whose steps diffusers can cache
    #: (FirstBlockCache); a job asking it of another family is refused.
    fast_tier: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "negative_prompt": self.negative_prompt,
            "negative_prompt_above_guidance": self.negative_prompt_above,
            "schedulers": self.schedulers,
            "clip_skip": self.clip_skip,
            "prompt_weighting": self.prompt_weighting,
            "loras": self.loras,
            "controlnet": self.controlnet,
            "soft_inpainting": self.soft_inpainting,
            "ip_adapter": self.ip_adapter,
            "guidance": self.guidance,
            "layers_in_one_call": self.regions,
            "fast_tier": self.fast_tier,
            "num_inference_steps": {"default": self.default_steps, "maximum": self.max_steps},
            "guidance_scale": {
                "default": self.default_guidance,
                "minimum": self.guidance_range[0],
                "maximum": self.guidance_range[1],
            },
        }


@dataclass(frozen=True)
class Preview:
    """The cheap latent-to-RGB approximation of a family's latent space (no VAE decode)."""

    factors: tuple[tuple[float, float, float], ...]  # one row per latent channel
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: Latents travel as a sequence of 2x2 patches, [H/2 * W/2, C * 4] (FLUX, SD 3 do not).
    packed: bool = False
    #: Latents travel as a sequence of one token per latent, [H * W, C] (Qwen-Image-2.1).
    sequence: bool = False
    #: Pixels a latent covers, a side: 8 for most VAEs, 16 for Qwen-Image-2.1's.
    per_latent: int = 8

    @classmethod
    def of(
        cls, space: str, *, packed: bool = False, sequence: bool = False, per_latent: int = 8
    ) -> Preview:
        """The preview of a latent space of ``LATENT_SPACES``."""
        table = LATENT_SPACES[space]
        return cls(
            factors=tuple(tuple(row) for row in table["factors"]),
            bias=tuple(table["bias"]),
            packed=packed,
            sequence=sequence,
            per_latent=per_latent,
        )


#: A single-file checkpoint's tensor table (name -> {"shape": [...], ...}) to None (not this
#: family) or whether it is the inpainting variant; a file of the family that cannot run
#: raises ``probe.Unsupported`` with the reason.
Detector = Callable[[dict[str, dict]], bool | None]
#: A GGUF transformer's tensor table and its file name to None (not this family) or whether it
#: is the inpainting variant; the name tells apart the releases whose tensors are the same
#: (FLUX.1 [dev] and Kontext, Qwen-Image and its edit models); ``Unsupported`` with the reason
#: for a file of the family that cannot run.
GgufDetector = Callable[[dict[str, dict], str], bool | None]


@dataclass(frozen=True, kw_only=True)
class Family:
    """A family declares what sets it apart; the defaults are the diffusion transformers'
    (FLUX, SD 3, Qwen-Image, Z-Image): 1024 px, sides in multiples of 16 (8 px per latent,
    2x2 patches), bfloat16 on CUDA, the pipeline's own text encoding."""

    name: str  # stored in the library: sd15, sdxl, flux
    label: str  # for people
    inpaint_channels: int | None  # the inpainting variant's; None: the family has none
    #: ``model_index.json`` ``_class_name`` values of its diffusers folders.
    folder_classes: tuple[str, ...]
    #: The diffusers pipeline class that inpaints with it.
    pipeline: str
    capabilities: Capabilities
    preview: Preview
    detect: Detector
    working_size: int = 1024  # the long side it was trained at
    size_multiple: int = 16  # both working sides are multiples of this
    #: The pipeline part whose ``config.json`` tells the variant by its ``in_channels``.
    denoiser: str = "transformer"
    #: A base model's, when the family's inpaint pipeline runs base models too; else None.
    base_channels: int | None = None
    cuda_dtype: str = "bfloat16"  # or float16
    #: "weighted": compel's weighted, chunked prompt embeddings (and clip skip); "plain": the
    #: pipeline's own text encoding of the prompt as written.
    text_encoding: str = "plain"
    #: A single-file checkpoint holds the whole pipeline (SD, as A1111 / Civitai publish it:
    #: None), or only the denoiser, this diffusers class (FLUX.1 Fill as Black Forest Labs
    #: publish it); then the other parts, with their weights, come from the configuration
    #: folder.
    single_file_denoiser: str | None = None
    #: How a GGUF file of its transformer (the community's quantized files, read with
    #: ``single_file_denoiser``) is recognised; None: GGUF files are not read for it.
    gguf_detect: GgufDetector | None = None
    #: Pipeline keyword arguments this family's calls always carry.
    call_arguments: dict[str, Any] = field(default_factory=dict)
    #: An instruction-edit family: the diffusers pipeline that edits the whole picture by the
    #: prompt (a request without a mask); ``pipeline`` edits inside a mask. None: no edits.
    edit_pipeline: str | None = None
    #: Reference pictures the edit pipeline reads beside the one it edits.
    reference_images: int = 0
    #: The pipeline argument the request's guidance goes to (Qwen: ``true_cfg_scale``).
    guidance_argument: str = "guidance_scale"
    #: The pipeline argument that carries keyword arguments to its transformer's joint
    #: attention (FLUX.1's ``joint_attention_kwargs``, FLUX.2's ``attention_kwargs``): where
    #: a layered call's attention mask goes (``backends.regional``). None: a UNet family's,
    #: or none.
    attention_argument: str | None = None
    #: How many times the picture's grid of tokens runs through that attention: 1, or 2 where
    #: the inpaint pipeline reads the picture again as a condition (FLUX.2 [klein]).
    picture_tokens: int = 1
    #: The pipeline argument that sets the pixels it generates, which it would otherwise
    #: bring to its own (Kontext: ``max_area``); the working size's area goes there.
    area_argument: str | None = None
    #: Values its folders' ``model_index.json`` has beside the class name, where two families
    #: share one (FLUX.2 [klein]'s ``is_distilled``); a missing key counts as False.
    folder_flags: dict[str, Any] = field(default_factory=dict)
    #: The shortest side a picture its edit pipeline reads may have (FLUX.2's: 64 px); a
    #: smaller reference picture is enlarged to it (Lanczos, the aspect ratio kept).
    min_picture_side: int = 0
    #: Its diffusers pipelines bring every picture to 1 MP whatever the call asks
    #: (Qwen-Image-Edit's, FIBO 2.0's references): the backend sets that area to its working
    #: size's square (``backends.picture_area``).
    fixed_picture_area: bool = False
    #: Its folders' ``processor/`` is a Qwen2-VL processor, which the backend builds without
    #: torchvision (``backends.qwen_vl``) where none is installed.
    vl_processor: bool = False
    #: The width its UNet's cross-attention reads (its text encoders' output): how a LoRA, a
    #: ControlNet or an IP-Adapter file tells which family it was made for (``probe``). None:
    #: the family reads no such file.
    add_on_width: int | None = None
    #: Key prefixes only this family's LoRAs have (SDXL's two text encoders' names): a LoRA
    #: with one is this family's whatever its width.
    lora_marks: tuple[str, ...] = ()
    #: Values a ControlNet's ``config.json`` has only for this family (SDXL's text-and-time
    #: embedding).
    controlnet_marks: dict[str, Any] = field(default_factory=dict)
    #: An add-on of a width no family reads (a custom one, a test's tiny one) is taken for this
    #: family's; one family says so (SD 1.5).
    add_on_fallback: bool = False
    #: The diffusers pipeline that inpaints with a ControlNet, built from the loaded
    #: pipeline's parts. None: no ControlNet.
    controlnet_pipeline: str | None = None
    #: The argument its mask pipeline reads the mask by (FIBO 2.0's own: ``mask``; None: its
    #: pipeline has none, and the mask goes to the edit pipeline as a picture after the one it
    #: edits, Qwen-Image-2.1's), and whether that pipeline takes a denoising strength (FIBO
    #: 2.0 greys the masked region out and regenerates it whole: no).
    mask_argument: str | None = "mask_image"
    takes_strength: bool = True
    #: How a family with no mask argument reads the mask: "picture" (after the one it edits,
    #: Qwen-Image-2.1) or "box" (its bounding box as a layout box the words describe,
    #: FLUX.3 [klein]).
    mask_as: str = "picture"
    #: Its pipelines are diffusers' modular ones (blocks, ``modular_model_index.json``: FLUX.3
    #: [klein]), run through ``backends.modular``.
    modular: bool = False
    #: The licence every model of the family is under (a key of the starter list's
    #: ``[licences]``), where one is: the library records it for a model that came in by hand,
    #: and a non-commercial one is refused where ALLOW_NONCOMMERCIAL_MODELS is off. None: it
    #: differs by model (FLUX.2 [klein] 4B and 9B), and the installer records it.
    licence: str | None = None
    #: Its VAE decodes an alpha channel (Qwen-Image-2.1's RGBA): ``background: transparent``
    #: keeps it (an RGBA result); else that field is not used, and the answer says so.
    paints_alpha: bool = False
    #: Module names only this family's transformer has, which an erase adapter's LoRA keys
    #: name (FLUX.2's fused single-block projection): an adapter with one is this family's
    #: (``probe.probe_eraser``). Empty: no erase adapter runs on it.
    eraser_marks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A mask read as a picture goes with the pictures the edit pipeline reads, which a
        # layered call in one pipeline (its own mask argument) does not take.
        if self.mask_argument is None and (self.capabilities.regions or not self.reference_images):
            raise ValueError(f"{self.name}: a mask read as a picture needs picture inputs")
        if self.mask_as not in ("picture", "box"):
            raise ValueError(f"{self.name}: mask_as is 'picture' or 'box'")

    @property
    def edits(self) -> bool:
        return self.edit_pipeline is not None

    def accepts(self) -> dict[str, Any]:
        """What its models accept, as ``GET /api/models`` and the studio show it: the
        capabilities, whether a request without a mask edits the whole picture by the words,
        how many reference pictures it reads, and whether ``background: transparent`` keeps
        the alpha it paints."""
        return {
            **self.capabilities.describe(),
            "edits": self.edits,
            "reference_images": self.reference_images,
            "transparent_background": self.paints_alpha,
        }
