"""Prompt weighting, long prompts and clip skip (issue 17): the A1111 syntax, and the text
embeddings the tiny SD 1.5 and SDXL pipelines get from it."""

from __future__ import annotations

import pytest
import torch
from accelerate.hooks import AlignDevicesHook, add_hook_to_module
from diffusers import DiffusionPipeline

from inpainting.engine import InvalidInput
from inpainting.engine.backends.conditioning import encode
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.prompts import LoraUse, parse_weights, split_loras
from inpainting.testing.tiny_model import write_tiny_sdxl_inpaint_model


def test_the_a1111_syntax():
    assert parse_weights("a (red:1.5) rose") == [("a ", 1.0), ("red", 1.5), (" rose", 1.0)]
    assert parse_weights("(red)") == [("red", pytest.approx(1.1))]
    assert parse_weights("[red]") == [("red", pytest.approx(1 / 1.1))]
    assert parse_weights("((red))") == [("red", pytest.approx(1.21))]
    assert parse_weights("(a [b]:2)") == [("a ", 2.0), ("b", pytest.approx(2 / 1.1))]
    assert parse_weights(r"a \(red\) \[x\] \\") == [("a (red) [x] \\", 1.0)]
    assert parse_weights("time: 3pm, (x:y)") == [("time: 3pm, ", 1.0), ("x:y", 1.1)]
    assert parse_weights("") == [("", 1.0)]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a (red rose", "has a '(' that is never closed, at character 3"),
        ("a red) rose", "has a ')' that closes nothing, at character 6"),
        ("a [red rose", "has a '[' that is never closed, at character 3"),
        ("a (red] rose", "closes '(' (at character 3) with ']', at character 7"),
    ],
)
def test_a_bracket_that_does_not_match_says_where(prompt, message):
    with pytest.raises(InvalidInput) as raised:
        parse_weights(prompt)
    assert message in str(raised.value) and raised.value.field == "prompt"


def test_lora_tags_are_taken_out_of_the_prompt():
    text, uses = split_loras("a rose <lora:ink:0.8>, <lora:style> in snow")
    assert text == "a rose ,  in snow"
    assert uses == [LoraUse("ink", 0.8), LoraUse("style", 1.0)]
    with pytest.raises(InvalidInput, match="'x' in '<lora:ink:x>' is not a number"):
        split_loras("<lora:ink:x>")


@pytest.fixture(scope="module")
def pipes(tiny_model, tmp_path_factory):
    sdxl = write_tiny_sdxl_inpaint_model(tmp_path_factory.mktemp("xl") / "xl")
    return {
        "sd15": load_pipeline(str(tiny_model), "cpu", cache_size=4),
        "sdxl": load_pipeline(str(sdxl), "cpu", cache_size=4),
    }


def positions_of(tokenizer, before: str, words: str) -> list[int]:
    """Where the tokens of ``words`` stand in ``before + words + ...`` (after the start token)."""
    start = len(tokenizer(before.strip()).input_ids) - 1
    count = len(tokenizer(f"{before}{words}").input_ids) - start - 1
    return list(range(start, start + count))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_weight_changes_the_embeddings_of_its_words_only(pipes, family):
    pipe = pipes[family]
    plain = encode(pipe, ["a red rose"], [""], 1)["prompt_embeds"][0]
    weighted = encode(pipe, ["a (red:1.5) rose"], [""], 1)["prompt_embeds"][0]
    assert plain.shape == weighted.shape
    changed = [i for i in range(plain.shape[0]) if not torch.equal(plain[i], weighted[i])]
    assert changed == positions_of(pipe.tokenizer, "a ", "red")
    # Equal weights are no weights: the pipeline's own encoding, to the last bit.
    again = encode(pipe, ["(a red rose:1)"], [""], 1)["prompt_embeds"][0]
    assert torch.equal(again, plain)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_a_long_prompt_reaches_the_encoder_in_full(pipes, family):
    """200 tokens (the tiny tokenizer's window is 16, a real one's 77): chunks, not a cut."""
    pipe = pipes[family]
    window = pipe.tokenizer.model_max_length
    words = ["rose"] * 199
    long = encode(pipe, [" ".join(words)], [""], 1)["prompt_embeds"]
    chunks = -(-200 // (window - 2))  # each chunk holds window - 2 words between its markers
    assert long.shape[1] == chunks * window
    changed_end = encode(pipe, [" ".join([*words[:-1], "tulip"])], [""], 1)
    assert not torch.equal(changed_end["prompt_embeds"], long)  # the last word counts
    # In one batch, a short prompt is padded to the long one's length.
    both = encode(pipe, [" ".join(words), "a rose"], ["", ""], 1)
    assert both["prompt_embeds"].shape[1] == long.shape[1]
    assert both["negative_prompt_embeds"].shape == both["prompt_embeds"].shape


def test_clip_skip_takes_an_earlier_layer_as_a1111_counts(pipes):
    pipe = pipes["sd15"]
    ids = pipe.tokenizer(["a red rose"], padding="max_length", return_tensors="pt").input_ids
    with torch.inference_mode():
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states
        expected = pipe.text_encoder.final_layer_norm(hidden[-2])
    skipped = encode(pipe, ["a red rose"], [""], 2)["prompt_embeds"]
    assert torch.allclose(skipped, expected, atol=1e-6)
    assert not torch.allclose(encode(pipe, ["a red rose"], [""], 1)["prompt_embeds"], expected)


def test_a_lora_acts_in_full_on_fused_projections_and_they_are_fused_again(tiny_model, tmp_path):
    """On CUDA the model runs with fused QKV projections; a LoRA's q/k/v weights sit on the
    separate ones, so the backend unfuses for the job and fuses again afterwards."""
    import shutil

    import numpy as np

    from inpainting.engine import InpaintRequest, get_backend, run_inpaint
    from inpainting.testing.tiny_lora import write_tiny_lora
    from inpainting.testing.tiny_model import tiny_config
    from tests.images import box_mask, gradient

    model = shutil.copytree(tiny_model, tmp_path / "fused")
    lora = write_tiny_lora(tiny_model, tmp_path / "ink.safetensors", layout="peft")
    backend = get_backend("diffusers", tiny_config(model, model_cache_size=4))

    def run(loras=()):
        request = InpaintRequest(
            image=gradient(96, 64),
            mask=box_mask(96, 64, (32, 20, 63, 43), inpaint_white=False),
            prompt="a red rose",
            num_inference_steps=4,
            seed=3,
            loras=loras,
        )
        return np.asarray(run_inpaint(request, backend).images[0]).astype(int)

    unfused = run(((str(lora), 1.0),))
    pipe = backend.load()
    pipe.fuse_qkv_projections()
    fused = run(((str(lora), 1.0),))
    assert pipe.fusing_unet  # fused again for the next job
    assert np.abs(fused - unfused).max() <= 1  # the LoRA acted in full
    pipe.unfuse_qkv_projections()


def _as_sequential_offload_leaves_it(module: torch.nn.Module, monkeypatch) -> None:
    """Make ``module`` look as accelerate's sequential offload leaves it: a hook that runs it
    on its execution device (here the CPU), and a ``device`` that says meta, where its weights
    wait between layers. (The plan itself cannot run on this CPU torch: accelerate fails to
    move the weights back from meta, so the GPU kit runs it on a GPU.)"""
    add_hook_to_module(module, AlignDevicesHook(execution_device=torch.device("cpu")))
    monkeypatch.setattr(type(module), "device", property(lambda self: torch.device("meta")))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_the_embeddings_are_made_where_the_pipeline_runs_not_where_its_encoder_says(
    tiny_model, tmp_path, family, monkeypatch
):
    """Under the sequential memory plan (``memory.SEQUENTIAL``, the last resort on a small
    card) each text encoder says it is on the meta device. On an H100 (2026-11-26) an SDXL
    job under that plan failed with "Cannot copy out of meta tensor": compel put the token ids
    where the encoder said. The embeddings are made on the pipeline's execution device, and
    are the ones the same pipeline gives with its encoders in place."""
    folder = tiny_model if family == "sd15" else write_tiny_sdxl_inpaint_model(tmp_path / "xl")
    pipe = DiffusionPipeline.from_pretrained(folder)  # its own, not the backend's cached one
    expected = encode(pipe, ["a (red:1.5) rose"], ["blurry"], 1)
    for part in pipe.components.values():
        if isinstance(part, torch.nn.Module):
            _as_sequential_offload_leaves_it(part, monkeypatch)
    assert pipe.text_encoder.device.type == "meta" and pipe._execution_device.type == "cpu"
    got = encode(pipe, ["a (red:1.5) rose"], ["blurry"], 1)
    assert got.keys() == expected.keys()
    for name, tensor in got.items():
        assert tensor.device.type == "cpu", name
        assert torch.equal(tensor, expected[name]), name
