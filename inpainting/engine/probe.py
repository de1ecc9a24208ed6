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
from dataclasses import dataclass, field
from pathlib import Path

from . import memory
from .families import FAMILIES, Family, Unsupported, family_of_folder, index_file

#: Where single-file checkpoints of each family find their pipeline configuration, shipped
#: (written by scripts/pipeline_configs.py): one folder per family and variant, so they load
#: with no network.
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "pipeline_configs"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
#: A safetensors header larger than this is not a model (a real SDXL file's is ~200 KB; a
#: LoRA's training metadata a few MB). Reading one costs about 12x its size in memory.
MAX_HEADER_BYTES = 16 * 1024 * 1024

_SD_UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


@dataclass(frozen=True)
class Probe:
    family: str  # a key of FAMILIES
    inpainting: bool  # the inpainting variant (SD: a 9-channel UNet; FLUX: Fill)
    layout: str  # "single-file" | "diffusers"
    details: dict = field(default_factory=dict)  # an upscaler's architecture and scale

    @property
    def working_size(self) -> int:
        return FAMILIES[self.family].working_size


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
        except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: the last
            raise Unsupported(f"{path.name} is not a safetensors file (bad header).") from None
    if not isinstance(table, dict):
        raise Unsupported(f"{path.name} is not a safetensors file (bad header).")
    table.pop("__metadata__", None)
    for name, entry in table.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise Unsupported(f"{path.name} is not a safetensors file (bad entry {name[:80]!r}).")
    return table


#: Where a single file's tensors belong (the original layouts): its text encoders and its
#: VAE; any other tensor is the denoiser's (a FLUX file is all transformer).
_TEXT_PREFIXES = ("cond_stage_model.", "conditioner.", "text_encoders.", "te.")
_OTHER_PREFIXES = ("first_stage_model.", "vae.")
#: The bytes of a weight as a GPU runs it (bf16 / fp16), whatever the file stores.
RUNTIME_BYTES = 2


def _numel(entry: dict) -> int:
    count = 1
    for side in entry["shape"]:
        count *= side
    return count


def _weight_files(folder: Path) -> list[Path]:
    """A part folder's weights: its full files, not the ``.fp16`` (variant) copies beside
    them, unless those are all there is."""
    files = sorted(folder.glob("*.safetensors"))
    full = [f for f in files if f.name.count(".") == 1]
    return full or files


def weight_parts(path: Path, family: Family) -> memory.Parts:
    """The bytes of a model's denoiser, text encoders and other parts at 16 bits a weight
    (how a GPU runs them), read from the safetensors headers: no weight is read."""
    sizes = {"denoiser": 0, "text_encoders": 0, "other": 0}
    if path.suffix.lower() == ".gguf":  # the transformer alone, held quantized as it is
        held = sum(read_gguf(path)[1].values())
        return memory.Parts(denoiser=held, text_encoders=0, other=0, fp8=False)
    if path.is_file():
        for name, entry in read_header(path).items():
            where = (
                "text_encoders"
                if name.startswith(_TEXT_PREFIXES)
                else "other"
                if name.startswith(_OTHER_PREFIXES)
                else "denoiser"
            )
            sizes[where] += _numel(entry) * RUNTIME_BYTES
    else:
        for part in sorted(p for p in path.iterdir() if p.is_dir()):
            where = (
                "denoiser"
                if part.name == family.denoiser
                else "text_encoders"
                if memory.is_text_part(part.name)
                else "other"
            )
            for file in _weight_files(part):
                sizes[where] += sum(map(_numel, read_header(file).values())) * RUNTIME_BYTES
    return memory.Parts(**sizes, fp8=family.denoiser == "transformer")


def probe_checkpoint(path: Path) -> Probe:
    """The family of a single-file checkpoint, from its keys and shapes: the first family
    whose detector recognises it."""
    table = read_header(path)
    for family in FAMILIES.values():
        try:
            inpainting = family.detect(table)
        except Unsupported as exc:
            raise Unsupported(f"{path.name} is {exc}") from None
        if inpainting is not None:
            return Probe(family.name, inpainting, "single-file")
    if _SD_UNET_IN not in table:
        raise Unsupported(
            f"{path.name}: no diffusion model found (no Stable Diffusion UNet, no SD 3 or FLUX "
            "transformer); a LoRA, a VAE, a ControlNet or a diffusers-layout file is not a "
            "checkpoint."
        )
    raise Unsupported(
        f"{path.name}: the family could not be detected (no known text encoder keys)."
    )


def _json_of(file: Path, unreadable: str):
    """A configuration file's JSON; ``Unsupported`` saying ``unreadable`` (and why) when the
    file is missing, not JSON or nested too deep."""
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise Unsupported(f"{unreadable} ({type(exc).__name__}).") from None


def probe_folder(path: Path) -> Probe:
    """The family of a diffusers folder, from its pipeline index (``model_index.json``, or a
    modular pipeline's) and its denoiser's config (the UNet's or the transformer's
    ``in_channels`` tell the variant)."""
    found = index_file(path) or path / "model_index.json"
    index = _json_of(found, f"{path.name}: not a diffusers pipeline folder")
    if not isinstance(index, dict):
        raise Unsupported(f"{path.name}: not a diffusers pipeline folder (bad configuration).")
    family = family_of_folder(index)
    if family is None:
        supported = sorted({c for f in FAMILIES.values() for c in f.folder_classes})
        raise Unsupported(
            f"{path.name}: a {index.get('_class_name')!r} pipeline is not supported "
            f"(supported: {', '.join(supported)})."
        )
    return Probe(family.name, _folder_variant(path, family), "diffusers")


def _folder_variant(path: Path, family: Family) -> bool:
    """Whether the folder holds the family's inpainting variant (else a base model its
    inpaint pipeline runs); ``Unsupported`` for a denoiser it cannot run."""
    part = path / family.denoiser
    unreadable = f"{path.name}: no readable {family.denoiser}/config.json"
    config = _json_of(part / "config.json", unreadable)
    channels = config.get("in_channels") if isinstance(config, dict) else None
    if channels not in (family.inpaint_channels, family.base_channels):
        raise Unsupported(
            f"{path.name}: a {family.denoiser} with {channels} input channels is not a "
            f"{family.label} model that inpaints here."
        )
    if not any(part.glob("*.safetensors")):
        raise Unsupported(
            f"{path.name}: the {family.denoiser} has no .safetensors weights (pickles refused)."
        )
    return channels == family.inpaint_channels


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
    if path.suffix.lower() == ".gguf":
        return probe_gguf(path)
    if path.suffix.lower() != ".safetensors":
        raise Unsupported(
            f"{path.name}: only .safetensors and .gguf files and diffusers folders are models."
        )
    return probe_checkpoint(path)


#: GGUF tensor types that are not quantized (a quantized file keeps its biases and norms so).
_GGUF_PLAIN = frozenset({"F32", "F16", "BF16"})


def read_gguf(path: Path) -> tuple[dict[str, dict], dict[str, int]]:
    """A GGUF file's tensor table (name -> {shape (PyTorch's order), dtype}) and the bytes it
    holds by tensor type, from its header: the file is memory-mapped, no weight is read."""
    import gguf  # noqa: PLC0415 - numpy-heavy, needed only for .gguf files

    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise Unsupported(f"{path.name} is not a GGUF file ({type(exc).__name__}).") from None
    table, held = {}, {}
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        table[tensor.name] = {"shape": [int(n) for n in reversed(tensor.shape)], "dtype": kind}
        held[kind] = held.get(kind, 0) + int(tensor.n_bytes)
    return table, held


def probe_gguf(path: Path) -> Probe:
    """A GGUF transformer (the community's quantized files) of a family diffusers reads them
    for (``Family.gguf_detect``: FLUX.1 Fill and Kontext, Qwen-Image-Edit and its Plus
    releases, FLUX.2 [klein]), told from its key names and shapes (and its name, where two
    releases have the same tensors); its quantization is the type that holds most of its
    bytes."""
    table, held = read_gguf(path)
    for family in FAMILIES.values():
        if family.gguf_detect is None:
            continue
        try:
            inpainting = family.gguf_detect(table, path.name)
        except Unsupported as exc:
            raise Unsupported(f"{path.name} is {exc}") from None
        if inpainting is not None:
            quantized = {k: v for k, v in held.items() if k not in _GGUF_PLAIN}
            quantization = max(quantized, key=quantized.get) if quantized else None
            details = {"quantization": quantization}
            return Probe(family.name, inpainting, "gguf", details)
    readable = ", ".join(dict.fromkeys(f.label for f in FAMILIES.values() if f.gguf_detect))
    raise Unsupported(
        f"{path.name}: no transformer of a family DreamLayer reads GGUF files for ({readable})."
    )


#: Key fragments of LoRA weights: kohya / A1111 (``lora_down``, ``lora_up``) and diffusers / PEFT
#: (``lora_A``, ``lora_B``).
_LORA_WEIGHTS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.")
#: Stable Diffusion 2.x's cross-attention width: its add-ons are named as unsupported.
SD2_WIDTH = 1024


def family_of_width(width: int | None) -> str | None:
    """The family whose add-ons (LoRAs, ControlNets, IP-Adapters) read ``width`` wide
    (``Family.add_on_width``), or None."""
    if width is None:
        return None
    return next((f.name for f in FAMILIES.values() if f.add_on_width == width), None)


def _add_on_family(width: int | None, name: str) -> str:
    """The family of an add-on (a ControlNet, an IP-Adapter) that reads ``width`` wide: the
    family of that width, SD 2.x's refused, any other width the ``add_on_fallback`` family's."""
    if width == SD2_WIDTH:
        raise Unsupported(f"{name} is a Stable Diffusion 2.x add-on; not supported.")
    fallback = next(f.name for f in FAMILIES.values() if f.add_on_fallback)
    return family_of_width(width) or fallback


def probe_lora(path: Path) -> str:
    """The family a ``.safetensors`` LoRA was trained for, from its keys and shapes: the family
    whose ``lora_marks`` it has (SDXL's second text encoder); else the width of a
    cross-attention key projection (``Family.add_on_width``); else a text encoder alone is the
    ``add_on_fallback`` family's (SD 1.5). ``Unsupported`` with the reason otherwise (pickles
    included)."""
    if path.suffix.lower() != ".safetensors":
        raise Unsupported(
            f"{path.name}: LoRAs are read from .safetensors files only (a pickle can run any "
            "code inside it)."
        )
    table = read_header(path)
    keys = [key for key in table if any(part in key for part in _LORA_WEIGHTS)]
    if not keys:
        raise Unsupported(f"{path.name}: no LoRA weights in it (no lora_down / lora_A keys).")
    for family in FAMILIES.values():
        if family.lora_marks and any(key.startswith(family.lora_marks) for key in keys):
            return family.name
    for key in keys:
        if "attn2" in key and "to_k" in key and (".lora_down." in key or ".lora_A." in key):
            shape = table[key]["shape"]
            family = family_of_width(shape[-1]) if shape else None
            if family is not None:
                return family
    if any(key.startswith(("lora_te_", "text_encoder.")) for key in keys):
        # One text encoder and no width a family reads: the add_on_fallback family's.
        return _add_on_family(None, path.name)
    raise Unsupported(f"{path.name}: the family it was trained for could not be detected.")


def probe_controlnet(path: Path) -> str:
    """The family of a ControlNet, from its diffusers folder's ``config.json``: the family
    whose ``controlnet_marks`` it has (SDXL's text-and-time embedding), else by the width its
    cross-attention reads (``_add_on_family``). ``Unsupported`` with the reason otherwise."""
    if not path.is_dir():
        kind = "a pickle" if path.suffix.lower() in PICKLE_SUFFIXES else "a single file"
        raise Unsupported(
            f"{path.name} is {kind}; ControlNets are read from diffusers folders (config.json "
            "and diffusion_pytorch_model.safetensors), as lllyasviel/control_v11p_sd15_inpaint "
            "is published."
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise Unsupported(f"{path.name}: no readable config.json ({type(exc).__name__}).") from None
    if not isinstance(config, dict) or config.get("_class_name") != "ControlNetModel":
        raise Unsupported(f"{path.name}: its config.json is not a ControlNetModel's.")
    if not any(path.glob("*.safetensors")):
        raise Unsupported(f"{path.name}: no .safetensors weights (pickles refused).")
    for family in FAMILIES.values():
        marks = family.controlnet_marks
        if marks and all(config.get(key) == value for key, value in marks.items()):
            return family.name
    return _add_on_family(config.get("cross_attention_dim"), path.name)


def _one_weights_file(path: Path, weights: list[Path], what: str) -> Path:
    """The one ``what`` weights file of the folder ``path`` among ``weights``; else
    ``Unsupported`` saying how many there are (and that pickles are refused, if any)."""
    if len(weights) == 1:
        return weights[0]
    pickles = [p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
    why = "pickles are refused" if pickles else "none found"
    raise Unsupported(
        f"{path.name}: one {what} .safetensors expected at its top ({why}; {len(weights)} there)."
    )


def probe_ip_adapter(path: Path) -> tuple[str, str]:
    """The family of an IP-Adapter folder and its weights' file name: the folder holds one
    ``.safetensors`` with ``image_proj.*`` and ``ip_adapter.*`` weights and the CLIP image
    encoder in ``image_encoder/`` (config.json and .safetensors weights). Its family by the width
    its cross-attention reads (``_add_on_family``, as for ControlNets). ``Unsupported`` with the
    reason otherwise (pickles included)."""
    if not path.is_dir():
        raise Unsupported(
            f"{path.name}: an IP-Adapter is a folder with its .safetensors and its image encoder "
            "in image_encoder/ (as h94/IP-Adapter publishes ip-adapter_sd15.safetensors with "
            "models/image_encoder)."
        )
    weights = [_one_weights_file(path, sorted(path.glob("*.safetensors")), "IP-Adapter")]
    encoder = path / "image_encoder"
    if not (encoder / "config.json").is_file() or not any(encoder.glob("*.safetensors")):
        raise Unsupported(
            f"{path.name}: no image encoder (image_encoder/ with config.json and .safetensors)."
        )
    table = read_header(weights[0])
    key = table.get("ip_adapter.1.to_k_ip.weight")
    if key is None or not any(name.startswith("image_proj.") for name in table):
        raise Unsupported(f"{weights[0].name}: no IP-Adapter weights (image_proj, ip_adapter).")
    return _add_on_family(key["shape"][-1], path.name), weights[0].name


#: The file of an erase adapter's precomputed prompt embedding (``prompt_embeds``, [1, tokens,
#: the text width]), and the one of its instruction where it has no embedding.
ERASER_EMBEDDING = "prompt_embeds.safetensors"
ERASER_INSTRUCTION = "instruction.txt"
#: The most an instruction may hold: a sentence or two, read at every job.
MAX_INSTRUCTION_BYTES = 4096


def probe_eraser(path: Path) -> tuple[str, dict]:
    """The family of an erase adapter folder and what it holds: one LoRA ``.safetensors``
    whose keys name modules only that family's transformer has (``Family.eraser_marks``), and
    either its prompt embedding (``ERASER_EMBEDDING``: no text encoder runs) or its
    instruction (``ERASER_INSTRUCTION``, at most 4 KB of UTF-8). The details: ``lora``,
    ``embedding`` (its file, or None) with its ``text_width``, and ``instruction``.
    ``Unsupported`` with the reason otherwise (pickles included)."""
    if not path.is_dir():
        raise Unsupported(
            f"{path.name}: an erase adapter is a folder with its LoRA .safetensors and its "
            f"{ERASER_EMBEDDING} or {ERASER_INSTRUCTION} (as slopshop/erase-v1 publishes it)."
        )
    lora = _one_weights_file(
        path, sorted(p for p in path.glob("*.safetensors") if p.name != ERASER_EMBEDDING), "LoRA"
    )
    keys = [key for key in read_header(lora) if any(part in key for part in _LORA_WEIGHTS)]
    family = next(
        (
            f
            for f in FAMILIES.values()
            if f.eraser_marks and any(mark in key for key in keys for mark in f.eraser_marks)
        ),
        None,
    )
    if family is None:
        raise Unsupported(
            f"{lora.name}: no LoRA of a model an erase adapter runs on (FLUX.2 [klein])."
        )
    details: dict = {"lora": lora.name, "embedding": None, "instruction": ""}
    embedding = path / ERASER_EMBEDDING
    instruction = path / ERASER_INSTRUCTION
    if embedding.is_file():
        shape = read_header(embedding).get("prompt_embeds", {}).get("shape", [])
        if len(shape) != 3 or shape[0] != 1:
            raise Unsupported(
                f"{path.name}: {ERASER_EMBEDDING} holds no prompt_embeds of shape [1, tokens, "
                "width]."
            )
        details |= {"embedding": ERASER_EMBEDDING, "text_width": shape[2]}
    elif instruction.is_file() and instruction.stat().st_size <= MAX_INSTRUCTION_BYTES:
        try:
            details["instruction"] = instruction.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise Unsupported(f"{path.name}: {ERASER_INSTRUCTION} is not UTF-8 text.") from None
    if details["embedding"] is None and not details["instruction"]:
        raise Unsupported(
            f"{path.name}: neither {ERASER_EMBEDDING} nor an {ERASER_INSTRUCTION} of at most "
            f"{MAX_INSTRUCTION_BYTES} bytes: the adapter's own prompt is needed."
        )
    return family.name, details


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
