"""What a model file or folder is, read from its keys, shapes and configuration alone.

A single-file checkpoint (the AUTOMATIC1111 / Civitai ``.safetensors``) is probed from its
header: the safetensors format starts with an 8-byte length and a JSON table of every tensor's
name, dtype and shape, so no weight is read and no code runs. The key names that tell the
families apart are those of the original (LDM) layout, which diffusers' single-file loader and
ComfyUI's model detection also use. A diffusers folder is probed from ``model_index.json`` and
its UNet's ``config.json``. Pickle formats (``.ckpt``, ``.bin``, ``.pt``, ``.pth``) are refused:
loading one can run any code it carries.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from .types import InvalidInput

#: The families the engine can run, with their working size (the size they were trained at).
FAMILIES = {"sd15": 512, "sdxl": 1024}
#: Their pipeline configurations, shipped (written by scripts/pipeline_configs.py): one folder
#: per family and variant, so single-file checkpoints load with no network.
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "pipeline_configs"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
#: A safetensors header larger than this is not a checkpoint (a real SDXL file's is ~200 KB).
MAX_HEADER_BYTES = 64 * 1024 * 1024

# Keys of the original layout (the UNet under ``model.diffusion_model.``).
_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"  # [320, in_channels, 3, 3]
_SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_SD2_TEXT = "cond_stage_model.model.token_embedding.weight"  # OpenCLIP ViT-H: SD 2.x
_SDXL_TEXT_2 = "conditioner.embedders.1.model.positional_embedding"  # OpenCLIP bigG
_SDXL_REFINER = "conditioner.embedders.0.model.text_projection"
_FLUX = "double_blocks.0.img_attn.norm.key_norm.scale"
_SD3 = ("joint_blocks.0.context_block.adaLN_modulation.1.bias",)

# diffusers pipeline class names (``model_index.json``'s ``_class_name``) per family.
_FOLDER_CLASSES = {
    "StableDiffusionPipeline": "sd15",
    "StableDiffusionInpaintPipeline": "sd15",
    "StableDiffusionImg2ImgPipeline": "sd15",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusionXLImg2ImgPipeline": "sdxl",
}


class Unsupported(InvalidInput):
    """A file or folder that is not a model the engine can run, and why (said to people)."""


@dataclass(frozen=True)
class Probe:
    family: str  # "sd15" | "sdxl"
    inpainting: bool  # a 9-channel UNet (4 latent + 1 mask + 4 masked-image latent)
    layout: str  # "single-file" | "diffusers"

    @property
    def working_size(self) -> int:
        return FAMILIES[self.family]


def read_header(path: Path) -> dict[str, dict]:
    """The tensor table of a safetensors file (name -> {dtype, shape, data_offsets})."""
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise Unsupported(f"{path.name} is not a safetensors file (it is too short).")
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= MAX_HEADER_BYTES:
            raise Unsupported(f"{path.name} is not a safetensors file (bad header length).")
        try:
            table = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError):
            raise Unsupported(f"{path.name} is not a safetensors file (bad header).") from None
    if not isinstance(table, dict):
        raise Unsupported(f"{path.name} is not a safetensors file (bad header).")
    table.pop("__metadata__", None)
    for name, entry in table.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
            raise Unsupported(f"{path.name} is not a safetensors file (bad entry {name[:80]!r}).")
    return table


def probe_checkpoint(path: Path) -> Probe:
    """The family of a single-file checkpoint, from its keys and shapes."""
    table = read_header(path)
    if _FLUX in table:
        raise Unsupported(
            f"{path.name} is a FLUX checkpoint; FLUX is not supported yet (SD 1.5 and SDXL are)."
        )
    if any(key in table or f"model.diffusion_model.{key}" in table for key in _SD3):
        raise Unsupported(f"{path.name} is a Stable Diffusion 3 checkpoint; not supported yet.")
    if _UNET_IN not in table:
        raise Unsupported(
            f"{path.name}: no Stable Diffusion UNet found (no {_UNET_IN!r}); a LoRA, a VAE, "
            "a ControlNet or a diffusers-layout file is not a checkpoint."
        )
    shape = table[_UNET_IN]["shape"]
    channels = shape[1] if len(shape) == 4 else None
    if channels not in (4, 9):
        raise Unsupported(f"{path.name}: a UNet with {channels} input channels is not SD.")
    if _SDXL_TEXT_2 in table:
        family = "sdxl"
    elif _SDXL_REFINER in table:
        raise Unsupported(f"{path.name} is an SDXL refiner; it cannot inpaint on its own.")
    elif _SD2_TEXT in table:
        raise Unsupported(f"{path.name} is a Stable Diffusion 2.x checkpoint; not supported.")
    elif _SD1_TEXT in table:
        family = "sd15"
    else:
        raise Unsupported(
            f"{path.name}: the family could not be detected (no known text encoder keys)."
        )
    return Probe(family, channels == 9, "single-file")


def probe_folder(path: Path) -> Probe:
    """The family of a diffusers folder, from ``model_index.json`` and the UNet's config."""
    try:
        index = json.loads((path / "model_index.json").read_text())
        unet = json.loads((path / "unet" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise Unsupported(
            f"{path.name}: not a diffusers pipeline folder ({type(exc).__name__})."
        ) from None
    if not isinstance(index, dict) or not isinstance(unet, dict):
        raise Unsupported(f"{path.name}: not a diffusers pipeline folder (bad configuration).")
    family = _FOLDER_CLASSES.get(str(index.get("_class_name", "")))
    if family is None:
        raise Unsupported(
            f"{path.name}: a {index.get('_class_name')!r} pipeline is not supported "
            f"(supported: {', '.join(sorted(_FOLDER_CLASSES))})."
        )
    channels = unet.get("in_channels")
    if channels not in (4, 9):
        raise Unsupported(f"{path.name}: a UNet with {channels} input channels is not SD.")
    if not any((path / "unet").glob("*.safetensors")):
        raise Unsupported(f"{path.name}: the UNet has no .safetensors weights (pickles refused).")
    return Probe(family, channels == 9, "diffusers")


def probe(path: Path) -> Probe:
    """What ``path`` (a ``.safetensors`` checkpoint or a diffusers folder) is; ``Unsupported``
    with the reason otherwise."""
    if path.is_dir():
        return probe_folder(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise Unsupported(
            f"{path.name} is a pickle ({path.suffix}): loading one can run any code inside "
            "it, so DreamLayer refuses it. Convert it to .safetensors (or download that "
            "version) and copy that in instead."
        )
    if path.suffix.lower() != ".safetensors":
        raise Unsupported(f"{path.name}: only .safetensors files and diffusers folders are models.")
    return probe_checkpoint(path)


#: Key fragments of LoRA weights: kohya / A1111 (``lora_down``, ``lora_up``) and diffusers / PEFT
#: (``lora_A``, ``lora_B``).
_LORA_WEIGHTS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.")
#: The cross-attention input width of each family (its text encoders' output).
_CROSS_WIDTH = {768: "sd15", 2048: "sdxl"}


def probe_lora(path: Path) -> str:
    """The family a ``.safetensors`` LoRA was trained for, from its keys and shapes: a second
    text encoder (``lora_te2_`` / ``text_encoder_2.``) is SDXL; else the width of a
    cross-attention key projection (768: SD 1.5, 2048: SDXL); else a first text encoder alone
    is SD 1.5. ``Unsupported`` with the reason otherwise (pickles included)."""
    if path.suffix.lower() != ".safetensors":
        raise Unsupported(
            f"{path.name}: LoRAs are read from .safetensors files only (a pickle can run any "
            "code inside it)."
        )
    table = read_header(path)
    keys = [key for key in table if any(part in key for part in _LORA_WEIGHTS)]
    if not keys:
        raise Unsupported(f"{path.name}: no LoRA weights in it (no lora_down / lora_A keys).")
    if any(key.startswith(("lora_te2_", "text_encoder_2.")) for key in keys):
        return "sdxl"
    for key in keys:
        if "attn2" in key and "to_k" in key and (".lora_down." in key or ".lora_A." in key):
            family = _CROSS_WIDTH.get(table[key]["shape"][-1])
            if family is not None:
                return family
    if any(key.startswith(("lora_te_", "lora_te1_", "text_encoder.")) for key in keys):
        return "sd15" if not any(k.startswith("lora_te1_") for k in keys) else "sdxl"
    raise Unsupported(f"{path.name}: the family it was trained for could not be detected.")


def probe_controlnet(path: Path) -> str:
    """The family of a ControlNet, from its diffusers folder's ``config.json``: SDXL when it
    takes SDXL's text-and-time embedding, SD 1.5 when its cross-attention reads CLIP ViT-L
    (768) or any other width but SD 2.x's 1024. ``Unsupported`` with the reason otherwise."""
    if not path.is_dir():
        kind = "a pickle" if path.suffix.lower() in PICKLE_SUFFIXES else "a single file"
        raise Unsupported(
            f"{path.name} is {kind}; ControlNets are read from diffusers folders (config.json "
            "and diffusion_pytorch_model.safetensors), as lllyasviel/control_v11p_sd15_inpaint "
            "is published."
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise Unsupported(f"{path.name}: no readable config.json ({type(exc).__name__}).") from None
    if not isinstance(config, dict) or config.get("_class_name") != "ControlNetModel":
        raise Unsupported(f"{path.name}: its config.json is not a ControlNetModel's.")
    if not any(path.glob("*.safetensors")):
        raise Unsupported(f"{path.name}: no .safetensors weights (pickles refused).")
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    if config.get("cross_attention_dim") == 1024:
        raise Unsupported(f"{path.name} is a Stable Diffusion 2.x ControlNet; not supported.")
    return "sd15"


def config_folder(configs: str | Path | None, found: Probe) -> Path:
    """The pipeline configuration (JSON and tokenizer files, no weights) a single-file
    checkpoint of this family loads with: ``<configs>/<family>[-inpainting]`` when a user put
    one there, else the one shipped with DreamLayer (``SHIPPED_CONFIGS``). A family with
    neither gives the folder under ``configs``, which does not exist."""
    name = found.family + ("-inpainting" if found.inpainting else "")
    for root in (configs, SHIPPED_CONFIGS):
        if root and (Path(root) / name / "model_index.json").is_file():
            return Path(root) / name
    return Path(configs or SHIPPED_CONFIGS) / name
