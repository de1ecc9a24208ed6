"""A tiny Real-ESRGAN with random weights, for the tests: the architecture of
RealESRGAN_x4plus (an RRDB network, x4), in the key layout its publisher's files use (basicsr's
names: ``conv_first``, ``body.N.rdbM.convK``, ``conv_body``, ``conv_up1`` / ``conv_up2``,
``conv_hr``, ``conv_last``), at 8 features and 1 block instead of 64 and 23: the same
arithmetic per pixel, much less of it."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from inpainting.engine import superres

#: spandrel's names for the RRDB network (old ESRGAN layout) and Real-ESRGAN's, by position.
_RENAMES = (
    (r"^model\.0\.", "conv_first."),
    (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
    (r"^model\.3\.", "conv_up1."),
    (r"^model\.6\.", "conv_up2."),
    (r"^model\.8\.", "conv_hr."),
    (r"^model\.10\.", "conv_last."),
)


def tiny_real_esrgan_weights(
    *, seed: int = 0, num_filters: int = 8, num_blocks: int = 1
) -> dict[str, torch.Tensor]:
    """The weights of a x4 RRDB network (one block of 8 features unless told; 23 of 64 is
    RealESRGAN_x4plus itself), named as Real-ESRGAN's files name them. The layers are
    spandrel's own (its ESRGAN class), initialised from ``seed``."""
    superres.spandrel()  # imports spandrel, without torchvision where there is none
    from spandrel.architectures.ESRGAN import ESRGAN  # noqa: PLC0415 - after the line above

    torch.manual_seed(seed)
    network = ESRGAN(in_nc=3, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=4)
    weights = {}
    for key, tensor in network.state_dict().items():
        trunk = re.match(rf"^model\.1\.sub\.{num_blocks}\.(weight|bias)$", key)  # after the blocks
        if trunk:
            weights[f"conv_body.{trunk.group(1)}"] = tensor
            continue
        for pattern, name in _RENAMES:
            if re.match(pattern, key):
                weights[re.sub(pattern, name, key)] = tensor
                break
        else:
            raise AssertionError(f"unexpected key {key}")
    return {key: tensor.contiguous() for key, tensor in weights.items()}


def write_tiny_real_esrgan(
    path: str | Path, *, seed: int = 0, num_filters: int = 8, num_blocks: int = 1
) -> Path:
    """The tiny Real-ESRGAN as ``path``: ``.safetensors``, or a ``.pth`` of weights only
    (wrapped in ``params_ema`` as Real-ESRGAN's releases are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = tiny_real_esrgan_weights(seed=seed, num_filters=num_filters, num_blocks=num_blocks)
    if path.suffix == ".safetensors":
        save_file(weights, str(path))
    else:
        torch.save({"params_ema": weights}, str(path))
    return path
