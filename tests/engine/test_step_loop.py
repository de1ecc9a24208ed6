"""The denoise loop reads nothing back from the device per step (issue 81): on a GPU every
such read makes the host wait until the queued kernels have run, so the next step's
launches cannot overlap this step's work.

On the CPU a read costs nothing, so the tests count them: ``DeviceReads`` follows every
tensor the models computed (from their weights, the latents) and counts each ``.item()``,
``.cpu()``, ``.tolist()`` and each conversion to a Python number or truth value of one of
them, during the step loop of a tiny-model job (from its first step's callback to its last)."""

from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from inpainting.engine import get_backend, run_inpaint
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.backends.steps import HOST_STEP_SCHEDULERS, host_timesteps
from inpainting.testing.tiny_flow import write_tiny_flux_fill_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request

#: What makes the host wait for a device tensor: its value read on the host.
READS = {
    torch.Tensor.item,
    torch.Tensor.cpu,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
}


class DeviceReads(TorchFunctionMode):
    """Counts host reads of computed tensors while ``counting``: a tensor is computed when an
    operation made it from a model's weights or from a computed tensor."""

    def __init__(self, pipe) -> None:
        super().__init__()
        self.kept: list[torch.Tensor] = []  # held, so that no id is reused while we run
        self.ids: set[int] = set()
        for name in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(pipe, name, None)
            if module is not None:
                self._mark([*module.parameters(), *module.buffers()])
        self.counting = False
        self.reads: list[str] = []

    def _mark(self, tensors) -> None:
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor) and id(tensor) not in self.ids:
                self.ids.add(id(tensor))
                self.kept.append(tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        computed = any(id(a) in self.ids for a in inputs)
        if self.counting and computed and func in READS and id(args[0]) in self.ids:
            where = traceback.extract_stack(limit=2)[0]  # the caller
            self.reads.append(f"{func.__name__} at {where.filename}:{where.lineno}")
        out = func(*args, **kwargs)
        if computed:
            self._mark(tree_flatten(out)[0])
        return out


def loop_reads(backend, model: str, **overrides) -> tuple[list[str], list]:
    """The reads counted during the step loop of one job, and its progress events."""
    tracker = DeviceReads(load_pipeline(model, "cpu"))
    events = []

    def progress(event) -> None:
        events.append(event)
        tracker.counting = event.step < event.total  # from the first step's end to the last

    with tracker:
        run_inpaint(inpaint_request(**overrides), backend, progress=progress)
    return tracker.reads, events


@pytest.mark.parametrize("scheduler", [None, "DDIM", "Euler", "Euler a", "DPM++ 2M Karras"])
def test_a_step_reads_nothing_back_from_the_device_previews_included(tiny_model, scheduler):
    backend = get_backend("diffusers", tiny_config(tiny_model, preview_every=2))
    reads, events = loop_reads(backend, str(tiny_model), num_inference_steps=8, scheduler=scheduler)
    assert reads == []
    # The previews still come, every 2 steps (on the CPU the copy is done at once).
    assert [e.step for e in events if e.preview] == [2, 4, 6]


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return write_tiny_flux_fill_model(tmp_path_factory.mktemp("flux") / "tiny-flux-fill")


def test_a_transformer_step_reads_nothing_back_either(flux):
    backend = get_backend("diffusers", tiny_config(flux, preview_every=2))
    reads, events = loop_reads(backend, str(flux), num_inference_steps=6, guidance_scale=30.0)
    assert reads == []
    assert [e.step for e in events if e.preview] == [2, 4]


def test_the_old_preview_read_is_what_the_count_sees(tiny_model):
    """The count is not blind: a callback that reads the latents with ``.cpu()`` each step, as
    the loop did before issue 81, is counted once a step."""
    pipe = load_pipeline(str(tiny_model), "cpu")
    tracker = DeviceReads(pipe)

    def reading(pipeline, step, timestep, kwargs):
        tracker.counting = True
        kwargs["latents"][0].float().cpu()
        return kwargs

    image, mask = inpaint_request().image, inpaint_request().mask
    with tracker, torch.inference_mode():
        pipe(
            prompt="a rose",
            image=image.resize((64, 64)),
            mask_image=mask.resize((64, 64)),
            height=64,
            width=64,
            num_inference_steps=4,
            callback_on_step_end=reading,
            callback_on_step_end_tensor_inputs=["latents"],
        )
    assert len([r for r in tracker.reads if r.startswith(f"cpu at {__file__}:")]) == 4


@pytest.mark.parametrize("scheduler", sorted(HOST_STEP_SCHEDULERS - {"PNDMScheduler"}))
def test_a_host_step_scheduler_steps_on_host_timesteps_and_the_denoiser_gets_device_copies(
    tiny_model, scheduler
):
    """DDIM, DDPM and LCM index their tables with the timestep and compare it: kept on the
    host, those reads wait for nothing; the denoiser is handed each step's copy made on the
    device before the loop (one copy, not one a step), and the picture is the same."""
    import diffusers

    pipe = load_pipeline(str(tiny_model), "cpu")
    default = pipe.scheduler
    pipe.scheduler = getattr(diffusers, scheduler).from_config(default.config)
    given: list[torch.Tensor] = []

    def spy(module, args, kwargs):  # registered after ``host_timesteps``' own: runs after it
        given.append(args[1] if len(args) > 1 else kwargs["timestep"])

    image, mask = inpaint_request().image.resize((64, 64)), inpaint_request().mask.resize((64, 64))
    arguments = dict(
        prompt="a rose",
        image=image,
        mask_image=mask,
        height=64,
        width=64,
        num_inference_steps=5,
        output_type="np",
    )
    try:
        with torch.inference_mode():
            stock = pipe(**arguments, generator=torch.Generator().manual_seed(3))
            with host_timesteps(pipe, "cpu") as table:
                hook = pipe.unet.register_forward_pre_hook(spy, with_kwargs=True)
                ours = pipe(**arguments, generator=torch.Generator().manual_seed(3))
                hook.remove()
                assert pipe.scheduler.timesteps.device.type == "cpu"
                copies = list(table.values())
    finally:
        pipe.scheduler = default
    assert len(given) == 5 and len(copies) == 5
    assert all(any(t is copy for copy in copies) for t in given)
    assert np.array_equal(stock.images, ours.images)
    assert "set_timesteps" not in vars(pipe.scheduler)  # the class's own again
