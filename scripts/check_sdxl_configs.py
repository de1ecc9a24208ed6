"""By hand (about 14 GB of memory, so not in the test suite): a real-size SDXL checkpoint,
random weights, written in the original (A1111) layout, loads offline with the configuration
DreamLayer ships and holds exactly the checkpoint's weights. The test suite does the same for
SD 1.5 (tests/engine/test_pipeline_configs.py).

    .venv/bin/python scripts/check_sdxl_configs.py /tmp/xl sdxl-inpainting sdxl
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLInpaintPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from inpainting.engine.probe import SHIPPED_CONFIGS, probe  # noqa: E402
from inpainting.testing.original_layout import write_single_file  # noqa: E402


def random_sdxl(folder: Path) -> StableDiffusionXLInpaintPipeline:
    """SDXL of the real size from the shipped configuration, random weights, in fp16."""
    torch.set_default_dtype(torch.float16)
    try:
        return StableDiffusionXLInpaintPipeline(
            vae=AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            text_encoder=CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
            text_encoder_2=CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            ),
            tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
            unet=UNet2DConditionModel.from_config(
                UNet2DConditionModel.load_config(folder / "unet")
            ),
            scheduler=EulerDiscreteScheduler.from_config(
                EulerDiscreteScheduler.load_config(folder / "scheduler")
            ),
        )
    finally:
        torch.set_default_dtype(torch.float32)


def offline_connect(self, address):
    if isinstance(address, str) or address[0] in ("127.0.0.1", "::1", "localhost"):
        return REAL_CONNECT(self, address)
    raise OSError(f"network forbidden: {address!r}")


REAL_CONNECT = socket.socket.connect


def main(out: Path, families: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for family in families:
        folder = SHIPPED_CONFIGS / family
        started = time.perf_counter()
        pipe = random_sdxl(folder)
        path = write_single_file(pipe, out / f"{family}.safetensors")
        parts = ("unet", "text_encoder", "text_encoder_2", "vae")
        sample = {
            part: {k: v.clone() for k, v in list(getattr(pipe, part).state_dict().items())[::50]}
            for part in parts
        }
        del pipe
        seconds = time.perf_counter() - started
        print(
            f"{family}: written in {seconds:.0f} s, {path.stat().st_size / 1e9:.2f} GB,",
            probe(path),
        )
        socket.socket.connect = offline_connect
        try:
            started = time.perf_counter()
            loaded = StableDiffusionXLInpaintPipeline.from_single_file(
                str(path), config=str(folder), local_files_only=True, torch_dtype=torch.float16
            )
        finally:
            socket.socket.connect = REAL_CONNECT
        print(f"{family}: loaded offline in {time.perf_counter() - started:.0f} s")
        for part, tensors in sample.items():
            state = getattr(loaded, part).state_dict()
            bad = [k for k, v in tensors.items() if not torch.equal(state[k], v)]
            failures += len(bad)
            print(f"  {part}: {len(tensors)} tensors compared, {len(bad)} differ")
        del loaded
        path.unlink()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:] or ["sdxl-inpainting", "sdxl"]))
