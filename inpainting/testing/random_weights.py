"""Random fp16 weights for modules of a real model's width, fast: the tests that load real-size
checkpoints (SD 1.5's billion weights, FLUX.1's transformer width) spent most of their time
drawing random numbers one by one."""

from __future__ import annotations

#: How many random numbers the weights are sliced from.
POOL = 1 << 24


def random_fp16(module, seed: int = 0):
    """``module``, built with ``accelerate.init_empty_weights`` (no memory for its weights),
    given fp16 weights of the scale of its own initialisation: matrices and kernels are slices
    of one pool of uniform random numbers times 1/sqrt(fan-in), norm weights are ones and
    biases zeros. A few seconds for SD 1.5's UNet, where its own initialisation takes ten."""
    import torch
    from accelerate.utils import set_module_tensor_to_device

    pool = (torch.rand(POOL, generator=torch.Generator().manual_seed(seed)) * 2 - 1).half()
    for index, (name, param) in enumerate(module.named_parameters()):
        count = param.numel()
        if param.ndim == 1:
            fill = torch.ones if name.endswith("weight") else torch.zeros
            value = fill(count, dtype=torch.float16)
        else:
            start = (index * 1_000_003) % POOL
            source = pool if start + count <= POOL else pool.repeat(count // POOL + 2)
            scale = (count // param.shape[0]) ** -0.5  # 1 / sqrt(fan-in)
            value = source[start : start + count].view(param.shape) * scale
        set_module_tensor_to_device(module, name, "cpu", value=value, dtype=torch.float16)
    return module
