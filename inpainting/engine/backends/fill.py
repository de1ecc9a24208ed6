"""What the fill engines (classical, LaMa) share: they fill a hole from the pixels around it,
read no prompt or instruction, and fill one picture at a time."""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from ..types import (
    FILL_CONTEXT_SHARE,
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    ProgressCallback,
    ProgressEvent,
)


class FillBackend:
    prefill = False  # it fills the new area of an outpaint itself
    uses_masked_content = False  # it fills the hole from around it
    edits = False  # a fill takes no instruction
    supports_batch = False  # a fill is per image; jobs run one by one
    regions_in_one_call = False  # it reads no prompt: a layered job's layers fill in turn
    context_share = FILL_CONTEXT_SHARE
    working_sizes = ()  # a crop is filled at its own size (or shrunk): no buckets
    #: What a job's metadata says the engine did instead of reading the prompt.
    prompt_note = ""
    model = ""  # the name a job's metadata gives the engine's model

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        """One filled picture a seed, a progress step each, cancellable between them."""
        total = len(call.seeds)
        images = []
        pictures = self.fills(call, is_cancelled)
        for index in range(total):
            if is_cancelled():
                raise Cancelled()
            images.append(next(pictures))
            progress(ProgressEvent(step=index + 1, total=total))
        return BackendOutput(
            images=images,
            model=self.model,
            metadata={"prompt_ignored": True, "note": self.prompt_note},
        )

    def fills(self, call: BackendCall, is_cancelled: CancelCheck) -> Iterator[Image.Image]:
        """The call's filled pictures, one a seed (``call.seeds``), made as they are taken."""
        raise NotImplementedError

    def inpaint_batch(self, calls, progresses, cancel_checks) -> list[BackendOutput]:
        """One by one (``supports_batch`` is False, so the runner never asks)."""
        return [
            self.inpaint(call, progress, cancelled)
            for call, progress, cancelled in zip(calls, progresses, cancel_checks, strict=True)
        ]
