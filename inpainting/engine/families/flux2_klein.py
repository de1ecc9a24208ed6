"""FLUX.2 [klein] (Black Forest Labs): the small FLUX.2 models (4 and 9 billion parameters)
that generate and edit by an instruction, with up to several reference pictures. A Qwen3 text
encoder (its hidden states of layers 9, 18 and 27, stacked) reads the prompt; the FLUX.2 VAE
has 32 latent channels at 8 px per latent, patchified 2x2 into 128 for the transformer, whose
picture tokens travel beside the noise as more tokens; 1024 px.

The released [klein] models are step-distilled (``is_distilled`` in ``model_index.json``: 4
steps, guidance distilled in, one pass per step); the "base" releases are not (50 steps,
classifier-free guidance, for fine-tuning). One module, two families told apart by that flag.
Neither takes a negative prompt as words here (diffusers' pipelines take embeddings only).

With a mask, diffusers' ``Flux2KleinInpaintPipeline`` regenerates the masked area only;
without one (or with reference pictures), ``Flux2KleinPipeline`` edits the whole picture, the
result composited through the mask by the runner. Black Forest Labs' single files hold the
transformer alone; a diffusers folder is needed (the scan says so). A GGUF file of the
transformer (the community's quantized ones, Black Forest Labs' key names) runs with an
installed [klein] folder's other parts: a base release by its name (``flux-2-klein-base-4b``),
FLUX.2 [dev] (Mistral's text width) refused."""

from __future__ import annotations

from dataclasses import replace

from .base import TRANSFORMER_PREFIXES, Capabilities, Family, Preview, Unsupported

#: Keys of the FLUX.2 transformer in one file (BFL's names; ComfyUI's prefix).
_MARKERS = ("double_stream_modulation_img.lin.weight", "single_stream_modulation.lin.weight")
#: The text input (``txt_in``: [width, text width]) of FLUX.2 [dev], whose text encoder is
#: Mistral Small 3.1 (three stacked hidden states of 5120); [klein]'s Qwen3 ones are narrower.
_TEXT_IN = "txt_in.weight"
DEV_TEXT_WIDTH = 15360


def detect(table: dict[str, dict]) -> bool | None:
    if not any(prefix + marker in table for prefix in TRANSFORMER_PREFIXES for marker in _MARKERS):
        return None
    raise Unsupported(
        "a FLUX.2 transformer in one file (Black Forest Labs' packaging holds the transformer "
        "alone, without its Qwen3 text encoder and VAE). Copy in the diffusers folder instead "
        "(black-forest-labs/FLUX.2-klein-4B as published)."
    )


def _gguf_detect(*, distilled: bool):
    """A GGUF FLUX.2 [klein] transformer: a base (not distilled) release when its name says
    base."""

    def detect(table: dict[str, dict], name: str) -> bool | None:
        prefix = next(
            (p for p in TRANSFORMER_PREFIXES if any(p + marker in table for marker in _MARKERS)),
            None,
        )
        if prefix is None:
            return None
        shape = table.get(prefix + _TEXT_IN, {}).get("shape", [])
        if len(shape) == 2 and shape[1] == DEV_TEXT_WIDTH:
            raise Unsupported(
                "a FLUX.2 [dev] transformer (text input 15360 wide: Mistral's); the FLUX.2 "
                "models that run here are [klein] (4B and 9B, with a Qwen3 text encoder)."
            )
        return True if ("base" not in name.lower()) == distilled else None

    return detect


#: The released, step-distilled [klein] models.
FAMILY = Family(
    name="flux2-klein",
    label="FLUX.2 [klein]",
    inpaint_channels=128,  # 32 latent channels in 2x2 patches: the edit model inpaints as is
    folder_classes=("Flux2KleinPipeline",),
    folder_flags={"is_distilled": True},
    pipeline="Flux2KleinInpaintPipeline",
    capabilities=Capabilities(
        default_steps=4,  # step-distilled
        max_steps=50,
        default_guidance=1.0,  # distilled in: the pipelines ignore it
        guidance_range=(1.0, 1.0),
        guidance=False,
        regions=True,  # the joint attention's mask (backends.regional)
        # No fast tier: diffusers 0.42.1's FirstBlockCache fails on FLUX.2's transformer (its
        # first block gives two streams, its last one), and 4 steps leave little to reuse.
    ),
    preview=Preview.of("flux2", packed=True),
    detect=detect,
    single_file_denoiser="Flux2Transformer2DModel",
    gguf_detect=_gguf_detect(distilled=True),
    edit_pipeline="Flux2KleinPipeline",
    reference_images=3,  # beside the picture it edits (a request sends at most 3)
    min_picture_side=64,  # diffusers' FLUX.2 image processor refuses smaller pictures
    attention_argument="attention_kwargs",
    picture_tokens=2,  # the noise's, and the picture's own as the inpaint pipeline's condition
    # Erase adapters (slopshop/erase-v1: a LoRA of the distilled 4B) name FLUX.2's modules.
    eraser_marks=(".to_qkv_mlp_proj.", ".ff.linear_in."),
)

#: The "base" [klein] releases: not distilled, classifier-free guidance.
BASE = replace(
    FAMILY,
    name="flux2-klein-base",
    label="FLUX.2 [klein] base",
    folder_flags={"is_distilled": False},
    capabilities=replace(
        FAMILY.capabilities,
        default_steps=50,  # the pipeline's default
        max_steps=100,
        default_guidance=4.0,  # Black Forest Labs' example
        guidance_range=(1.0, 20.0),
        guidance=True,
    ),
    detect=lambda table: None,  # single files: the family above says why not
    gguf_detect=_gguf_detect(distilled=False),
    eraser_marks=(),  # an erase adapter runs 4 distilled steps: the family above's
)
