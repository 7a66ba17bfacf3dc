"""Plain model calls as nnsight traces, so that they can run on a server: `VLM.logits` and
`VLM.generate` of a handle whose backend is not "local" (`VLM.with_backend`).

The generation trace asks for the generated token ids only (`tracer.result`); the generation settings travel
as the trace's arguments. A seed is applied inside the trace, on the machine that samples, before
the first forward pass: the same `torch.manual_seed` a local `VLM.generate(seed=...)` applies in
its forked random state, so a seeded sample drawn remotely equals the local one. `vrp serve` runs
each job in a forked random state too, so a job's seed never leaks into the next job.
"""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..models import VLM, VlmInputs
from ..models._remote import remote_argument


def generate_tokens(
    vlm: VLM,
    inputs: VlmInputs,
    *,
    backend: str,
    max_new_tokens: int,
    seed: int | None,
    **kwargs: Any,
) -> Int[Tensor, "rows seq"]:
    """Prompt and generated token ids of each returned sequence, generated on `backend`.

    Args:
      vlm: the model.
      inputs: an encoded batch.
      backend: "local", "serialise" or a server URL (`check_backend`).
      max_new_tokens: tokens generated per row at most.
      seed: seeds the sampling on the machine that runs the trace (None: its current state).
      **kwargs: passed to the transformers model's `generate` (e.g. `do_sample=True`).

    Raises:
      ConfigError: `backend` is not a backend.
      nnsight's RemoteError: the server refused or failed the job.
    """
    model = vlm.nnsight
    cuda = [vlm.device] if vlm.device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=cuda, device_type="cuda"),  # "serialise" seeds this process
        torch.no_grad(),
        model.generate(
            inputs.data,
            max_new_tokens=max_new_tokens,
            pad_token_id=vlm.tokenizer.pad_token_id,
            remote=remote_argument(backend),
            **kwargs,
        ) as tracer,
    ):
        if seed is not None:
            torch.manual_seed(seed)
        tokens = tracer.result.save()
    return tokens


def forward_logits(
    vlm: VLM, inputs: VlmInputs, *, backend: str, last_only: bool
) -> Float[Tensor, "batch seq vocab"] | Float[Tensor, "batch vocab"]:
    """The logits of a plain forward pass run on `backend`: at every position, or at the last
    (answer) position only, which is all that travels back then.

    Raises:
      ConfigError: `backend` is not a backend.
      nnsight's RemoteError: the server refused or failed the job.
    """
    model = vlm.nnsight
    keep = {"logits_to_keep": 1} if last_only else {}  # the other positions are not computed
    with torch.no_grad(), model.trace(inputs.data, remote=remote_argument(backend), **keep):
        logits = model.output.logits
        if last_only:
            logits = logits[:, -1]
        saved = logits.save()
    return saved
