"""The diffusers backend on a tiny random inpainting model loaded through from_pretrained."""

from dataclasses import replace

import numpy as np
import pytest

from inpainting.engine import (
    Cancelled,
    InpaintRequest,
    MaskOptions,
    effective_mask,
    get_backend,
    memory,
    run_inpaint,
    run_inpaint_batch,
)
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.diffusers import DiffusersBackend
from inpainting.engine.backends.loading import fast_path, load_pipeline, resolve_model
from inpainting.testing.tiny_model import tiny_config, write_tiny_inpaint_model
from tests.images import assert_same_image, box_mask, gradient


@pytest.fixture(scope="module")
def config(tiny_model):
    return tiny_config(tiny_model)


def request(**overrides):
    image = gradient(120, 80)
    mask = box_mask(120, 80, (40, 20, 80, 60), inpaint_white=False)
    values = dict(
        image=image,
        mask=mask,
        prompt="a red rose",
        num_inference_steps=6,
        denoising_strength=1.0,
        seed=7,
    )
    values.update(overrides)
    return InpaintRequest(**values)


def test_the_model_loads_once_per_process(config, tiny_model):
    first = load_pipeline(str(tiny_model), "cpu")
    assert load_pipeline(str(tiny_model), "cpu") is first
    assert first.unet.config.in_channels == 9
    assert get_backend("diffusers", config) is get_backend("diffusers", config)


def test_progress_per_step_preservation_and_size(config):
    events = []
    req = request()
    result = run_inpaint(req, get_backend("diffusers", config), progress=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e.total for e in events} == {6}
    out = np.asarray(result.images[0])
    original = np.asarray(req.image)
    mask = effective_mask(req.mask, req.image.size, MaskOptions())
    assert out.shape == original.shape
    assert (out[mask == 0] == original[mask == 0]).all()
    assert (out[mask == 255] != original[mask == 255]).any(axis=-1).mean() > 0.9
    assert result.engine == "diffusers" and result.seeds == [7]
    assert result.metadata["scheduler"] == "DDIMScheduler"


def test_same_seed_same_image_other_seed_other_image(config):
    backend = get_backend("diffusers", config)
    a = np.asarray(run_inpaint(request(seed=11), backend).images[0])
    b = np.asarray(run_inpaint(request(seed=11), backend).images[0])
    c = np.asarray(run_inpaint(request(seed=12), backend).images[0])
    assert (a == b).all()
    assert (a != c).any()


def test_samples_get_consecutive_seeds_each_reproducible(config):
    backend = get_backend("diffusers", config)
    batch = run_inpaint(request(seed=20, samples=3), backend)
    assert batch.seeds == [20, 21, 22]
    arrays = [np.asarray(image) for image in batch.images]
    assert (arrays[0] != arrays[1]).any() and (arrays[1] != arrays[2]).any()
    assert (arrays[0] != arrays[2]).any()
    single = run_inpaint(request(seed=21), backend)
    # The same image: CPU kernels may round differently for a batch of 3 than for 1, so a
    # few pixels can differ by one level (seen: 5 of 28800); a different seed differs widely.
    assert_same_image(batch.images[1], single.images[0])
    assert np.abs(arrays[0].astype(int) - arrays[1].astype(int)).max() > 10


def test_denoising_strength_sets_the_number_of_steps(config):
    events = []
    run_inpaint(
        request(num_inference_steps=8, denoising_strength=0.5),
        get_backend("diffusers", config),
        progress=events.append,
    )
    assert [e.step for e in events] == [1, 2, 3, 4]


def test_cancel_stops_within_one_step(config):
    events = []

    def is_cancelled():
        return len(events) >= 2

    with pytest.raises(Cancelled):
        run_inpaint(
            request(num_inference_steps=20),
            get_backend("diffusers", config),
            progress=events.append,
            is_cancelled=is_cancelled,
        )
    assert len(events) == 2


def test_missing_model_gives_a_clear_error(tmp_path):
    from inpainting.engine import EngineError

    with pytest.raises(EngineError, match="download_model"):
        load_pipeline(str(tmp_path / "nothing-here"), "cpu")


def test_deleted_hub_id_is_an_alias():
    assert resolve_model("runwayml/stable-diffusion-inpainting") == (
        "stable-diffusion-v1-5/stable-diffusion-inpainting"
    )


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M Karras", "UniPC", "ddim", "euler_a"])
def test_schedulers_by_name(config, name):
    from inpainting.engine.schedulers import SCHEDULERS, canonical_name

    backend = get_backend("diffusers", config)
    events = []
    result = run_inpaint(
        request(scheduler=name, num_inference_steps=4), backend, progress=events.append
    )
    class_name, extra = SCHEDULERS[canonical_name(name)]
    assert result.metadata["scheduler"] == canonical_name(name)
    assert result.metadata["scheduler_class"] == class_name
    assert [e.step for e in events] == [1, 2, 3, 4]
    # The model's own scheduler is back for the next job.
    assert type(load_pipeline(str(config.model), "cpu").scheduler).__name__ == "DDIMScheduler"


def test_karras_sigmas_are_set():
    from diffusers import DDIMScheduler

    from inpainting.engine.schedulers import make_scheduler

    scheduler = make_scheduler("DPM++ 2M Karras", DDIMScheduler().config)
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.use_karras_sigmas is True


def test_unknown_scheduler_is_refused(config):
    from inpainting.engine import InvalidInput

    with pytest.raises(InvalidInput, match="Unknown scheduler"):
        run_inpaint(request(scheduler="Warp drive"), get_backend("diffusers", config))


def test_previews_every_n_steps_and_cheap(tiny_model):
    import io
    import statistics
    import time

    from PIL import Image

    from inpainting.engine.previews import latents_to_jpeg

    config = tiny_config(tiny_model, working_size=128, preview_every=2)
    events = []
    result = run_inpaint(
        request(num_inference_steps=7), get_backend("diffusers", config), progress=events.append
    )
    with_preview = [e.step for e in events if e.preview]
    assert with_preview == [2, 4, 6]  # never on the last step: the result is coming
    preview = Image.open(io.BytesIO(events[1].preview))
    width, height = result.metadata["working_size"]
    assert preview.format == "JPEG" and preview.size == (width // 2, height // 2)  # latents

    # Cost: an SD 1.5 512 x 512 latent (4 x 64 x 64) against one step of the tiny model.
    latents = np.random.default_rng(0).normal(size=(4, 64, 64)).astype(np.float32)
    costs = []
    for _ in range(20):
        started = time.perf_counter()
        latents_to_jpeg(latents)
        costs.append(time.perf_counter() - started)
    step = result.inference_seconds / 7
    print(f"preview {statistics.median(costs) * 1000:.2f} ms, tiny step {step * 1000:.1f} ms")
    assert statistics.median(costs) < 0.05 * step


def test_out_of_memory_fails_that_job_and_the_next_one_succeeds(config, monkeypatch):
    import torch

    from inpainting.engine import EngineError

    backend = get_backend("diffusers", config)
    pipe = load_pipeline(str(config.model), "cpu")
    original_forward = pipe.unet.forward
    calls = {"n": 0}

    def forward_that_runs_out_of_memory(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # in the middle of the first job
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original_forward(*args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", forward_that_runs_out_of_memory)
    with pytest.raises(EngineError, match="ran out of memory"):
        run_inpaint(request(scheduler="Euler"), backend)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"  # restored after the failure
    result = run_inpaint(request(), backend)
    assert len(result.images) == 1 and calls["n"] > 2


def test_the_fast_path_keeps_the_images(tiny_model):
    """channels-last and fused QKV (on CUDA with ``INPAINT_COMPILE``) change the memory layout
    and fuse the attention projections; the result stays the same image. Run here on the CPU,
    tiny model."""
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    from inpainting.engine.backends.loading import speed_up

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            return pipe(
                prompt="a red rose",
                image=gradient(64, 64),
                mask_image=box_mask(64, 64, (16, 16, 48, 48), inpaint_white=True),
                num_inference_steps=3,
                height=64,
                width=64,
                generator=torch.Generator("cpu").manual_seed(3),
                output_type="np",
            ).images[0]

    plain = generate(StableDiffusionInpaintPipeline.from_pretrained(tiny_model))
    fast_pipe = speed_up(
        StableDiffusionInpaintPipeline.from_pretrained(tiny_model),
        denoiser="unet",
        channels_last=True,
        fuse_qkv=True,
        compile_unet=False,
    )
    assert fast_pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = {type(p).__name__ for p in fast_pipe.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}
    fast = generate(fast_pipe)
    assert np.abs(fast - plain).max() < 1e-3


def test_the_fast_path_is_for_a_compiled_denoiser_on_cuda_only():
    """Eager on an H100 the worker's path was slower with channels-last and fused QKV than
    without (bench/fast_path_parts.py, 2026-11-27): an eager CUDA pipeline keeps the stock
    layout; a compiled one gets both (fused QKV only where every part is on the GPU)."""
    off = {"channels_last": False, "fuse_qkv": False}
    assert fast_path("cuda", memory.GPU, False) == {**off, "compile_unet": False}
    assert fast_path("cuda", memory.GPU, True) == {
        "channels_last": True,
        "fuse_qkv": True,
        "compile_unet": True,
    }
    assert fast_path("cuda", memory.MODEL_OFFLOAD, True)["fuse_qkv"] is False
    assert fast_path("cpu", memory.CPU, True) == {**off, "compile_unet": True}


def test_jobs_batched_together_each_get_their_own_image(config):
    """Three jobs of one size share one pipeline call; each gets the image it would get alone,
    its own progress, and its own seeds. A job of another size runs on its own."""
    backend = get_backend("diffusers", config)
    jobs = [
        request(seed=31, prompt="a red rose"),
        request(seed=32, prompt="a cat", samples=2, negative_prompt="sky"),
        request(seed=33, mask=box_mask(120, 80, (10, 10, 50, 40), inpaint_white=False)),
        request(
            seed=34,
            image=gradient(64, 64),
            mask=box_mask(64, 64, (8, 8, 30, 30), inpaint_white=False),
        ),
    ]
    events = [[] for _ in jobs]
    outcomes = run_inpaint_batch(
        jobs,
        backend,
        progresses=[log.append for log in events],
        cancel_checks=[lambda: False] * len(jobs),
    )
    assert [o.metadata["batched_jobs"] for o in outcomes] == [3, 3, 3, 1]
    assert [o.seeds for o in outcomes] == [[31], [32, 33], [33], [34]]
    assert all([e.step for e in log] == list(range(1, 7)) for log in events)
    for job, outcome in zip(jobs, outcomes, strict=True):
        alone = run_inpaint(job, backend)
        for batched, single in zip(outcome.images, alone.images, strict=True):
            assert_same_image(batched, single)
    # Different prompts and masks really are different jobs.
    assert (
        np.abs(
            np.asarray(outcomes[0].images[0], int) - np.asarray(outcomes[2].images[0], int)
        ).max()
        > 10
    )


def test_a_batch_stops_when_every_job_in_it_is_cancelled(config):
    backend = get_backend("diffusers", config)
    cancelled = [False, False]
    steps = []

    def progress_of(index):
        def progress(event):
            steps.append((index, event.step))
            if event.step == 2:
                cancelled[index] = True

        return progress

    outcomes = run_inpaint_batch(
        [request(seed=1), request(seed=2)],
        backend,
        progresses=[progress_of(0), progress_of(1)],
        cancel_checks=[lambda: cancelled[0], lambda: cancelled[1]],
    )
    assert all(isinstance(o, Cancelled) for o in outcomes)
    assert max(step for _, step in steps) == 2


@pytest.mark.heavy  # inductor's first compile: 40 s and more on 2 cores
def test_inpaint_compile_compiles_at_worker_start_and_gives_the_same_image(tiny_model):
    """``INPAINT_COMPILE``: ``torch.compile`` on the UNet (inductor; on the CPU here, 35 s
    to a minute on this machine, the first time), compiled by the warm-up call when the model
    loads. A job at the working size then compiles nothing more and gives the uncompiled
    image."""
    import torch
    from torch._dynamo.utils import counters

    job = request(
        image=gradient(64, 64),
        mask=box_mask(64, 64, (16, 16, 48, 48), inpaint_white=False),
        inpaint_area="whole",
    )
    plain = run_inpaint(job, DiffusersBackend(str(tiny_model), "cpu", working_size=64))
    compiled_backend = DiffusersBackend(str(tiny_model), "cpu", working_size=64, compile_unet=True)
    pipe = compiled_backend.load()
    assert isinstance(pipe.unet, torch._dynamo.eval_frame.OptimizedModule)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0  # the warm-up compiled
    compiled = run_inpaint(job, compiled_backend)
    assert counters["stats"]["unique_graphs"] == graphs
    assert_same_image(compiled.images[0], plain.images[0])


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    """Another tiny model: the same architecture, other random weights (other images)."""
    return write_tiny_inpaint_model(tmp_path_factory.mktemp("second") / "tiny-2", seed=1)


def test_a_cache_of_one_alternating_two_models_gives_each_its_own_image(
    config, tiny_model, second_model
):
    """MODEL_CACHE_SIZE=1: each job gets the image its model gives alone, and the worker never
    holds both pipelines; a job that had to load says how long that took."""
    one = replace(config, model_cache_size=1)
    two = replace(one, model=str(second_model))
    alone = {}
    for cfg in (one, two):
        backend_module.unload_all()
        alone[cfg.model] = run_inpaint(request(), get_backend("diffusers", cfg))
    assert not np.array_equal(
        np.asarray(alone[one.model].images[0]), np.asarray(alone[two.model].images[0])
    )
    backend_module.unload_all()
    for cfg in (one, two, one, two):
        result = run_inpaint(request(), get_backend("diffusers", cfg))
        assert backend_module.loaded_models() == [cfg.model]  # never both
        assert_same_image(result.images[0], alone[cfg.model].images[0])
        assert result.metadata["model_load_seconds"] > 0  # it had to load each time
    # Two fit in a cache of two: the second round loads nothing.
    both = [replace(cfg, model_cache_size=2) for cfg in (one, two)]
    for cfg in both:
        run_inpaint(request(), get_backend("diffusers", cfg))
    for cfg in both:
        result = run_inpaint(request(), get_backend("diffusers", cfg))
        assert "model_load_seconds" not in result.metadata
    assert sorted(backend_module.loaded_models()) == sorted([one.model, two.model])
    backend_module._evict(1)


def test_a_cpu_runs_everything_in_place_and_the_held_memory_is_reported(tiny_model):
    """A memory plan moves parts between CPU and GPU memory; on a CPU there is nothing to
    move, so the pipeline loads as usual and says so (plan "cpu"), whatever offload was asked.
    The bytes its weights hold are those of every part's parameters and buffers; an unknown
    plan is refused."""
    from inpainting.engine import EngineError
    from inpainting.engine.backends import loading as backend_module

    backend_module.unload_all()
    pipe = backend_module.load_pipeline(str(tiny_model), "cpu", memory_plan="model-offload")
    held = backend_module.loaded_pipelines()
    assert [(h["model"], h["plan"], h["family"]) for h in held] == [
        (str(tiny_model), "cpu", "sd15")
    ]
    tensors = []
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        tensors += [*part.parameters(), *part.buffers()]  # position ids too
    expected = sum(t.numel() * t.element_size() for t in tensors)
    assert held[0]["bytes"] == expected > 0
    with pytest.raises(EngineError, match="MODEL_MEMORY_PLAN must be one of auto, gpu, fp8"):
        backend_module.load_pipeline(str(tiny_model), "cpu", memory_plan="disk")
