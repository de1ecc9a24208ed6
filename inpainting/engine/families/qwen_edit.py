"""Qwen-Image-Edit (Alibaba's Qwen team): a 20-billion-parameter MMDiT that edits a picture by
an instruction. A Qwen2.5-VL model reads the picture with the words; the picture's latents
travel beside the noise as more tokens (2x2 patches of the 16-channel Qwen-Image VAE, 8 px
per latent), 1024 px. Guidance is true classifier-free guidance (``true_cfg_scale``, with the
negative prompt). The Plus releases (2509, 2511) read up to three pictures: the one to edit
and two references ("put the chair of picture 2 in picture 1").

With a mask, diffusers' ``QwenImageEditInpaintPipeline`` regenerates the masked area only;
without one, the edit pipeline changes the whole picture. Qwen publishes diffusers folders;
the transformer alone in one file (ComfyUI's packaging) looks the same as Qwen-Image's, so
an edit model is told only from its folder's ``model_index.json``. A GGUF file of the
transformer (the community's quantized ones, diffusers' key names) is told by its name, which
says Edit, and Plus by its release (``Qwen-Image-Edit-2509-Q4_K_M.gguf``); it runs with an
installed folder's other parts of the same family."""

from __future__ import annotations

from dataclasses import replace

from .base import TRANSFORMER_PREFIXES, Capabilities, Family, Preview, Unsupported

#: Keys of the Qwen-Image transformer in one file (the diffusers names; ComfyUI's prefix).
_MARKER = "transformer_blocks.0.img_mod.1.weight"


#: Words in a Plus release's file names (2509, 2511: the picture and two references).
_PLUS_NAMES = ("2509", "2511", "plus")


def _is_qwen_image(table: dict[str, dict]) -> bool:
    return any(prefix + _MARKER in table for prefix in TRANSFORMER_PREFIXES)


def _gguf_detect(*, plus: bool):
    """A GGUF Qwen-Image transformer named as an edit model's, of the Plus releases or not."""

    def detect(table: dict[str, dict], name: str) -> bool | None:
        if not _is_qwen_image(table):
            return None
        lowered = name.lower()
        if "edit" not in lowered:
            raise Unsupported(
                "a Qwen-Image transformer whose name does not say Edit: Qwen-Image and its edit "
                "models have the same tensors, and only the edit models run here. A "
                "Qwen-Image-Edit GGUF file has 'edit' in its name (with 2509, 2511 or 'plus' "
                "for the Plus releases): rename it so if it is one."
            )
        return True if any(word in lowered for word in _PLUS_NAMES) == plus else None

    return detect


def detect(table: dict[str, dict]) -> bool | None:
    if not _is_qwen_image(table):
        return None
    raise Unsupported(
        "a Qwen-Image transformer in one file; whether it is the edit model cannot be told "
        "from the file (Qwen-Image and Qwen-Image-Edit have the same tensors). Copy in the "
        "diffusers folder instead (Qwen/Qwen-Image-Edit-2509 as published)."
    )


FAMILY = Family(
    name="qwen-edit",
    label="Qwen-Image-Edit",
    inpaint_channels=64,  # 16 latent channels in 2x2 patches: the edit model inpaints as is
    folder_classes=("QwenImageEditPipeline",),
    pipeline="QwenImageEditInpaintPipeline",
    capabilities=Capabilities(
        negative_prompt=True,
        default_steps=50,  # Qwen's examples
        max_steps=100,
        default_guidance=4.0,  # true_cfg_scale in Qwen's examples
        guidance_range=(1.0, 20.0),
        # No fast tier yet: FirstBlockCache needs two blocks, and the tiny Qwen the tests
        # build has one, so nothing here would show that it runs.
    ),
    preview=Preview.of("wan21", packed=True),  # Qwen-Image encodes with the Wan 2.1 VAE
    detect=detect,
    single_file_denoiser="QwenImageTransformer2DModel",
    gguf_detect=_gguf_detect(plus=False),
    edit_pipeline="QwenImageEditPipeline",
    guidance_argument="true_cfg_scale",
    vl_processor=True,
    fixed_picture_area=True,
)

#: Qwen-Image-Edit-2509 and later: the picture and up to two reference pictures.
PLUS = replace(
    FAMILY,
    name="qwen-edit-plus",
    label="Qwen-Image-Edit Plus",
    folder_classes=("QwenImageEditPlusPipeline",),
    edit_pipeline="QwenImageEditPlusPipeline",
    reference_images=2,
    detect=lambda table: None,  # single files: the family above says why not
    gguf_detect=_gguf_detect(plus=True),
)
