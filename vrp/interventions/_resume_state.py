"""`resume_state`: one run of some inputs, keeping what resuming copies of it needs (`Resume`)."""

from dataclasses import dataclass
from typing import Any

import nnsight
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import Component, GraphError, Site
from ..models import VLM, VlmInputs
from ..models._remote import remote_argument
from ._execute import ExecutionConfig, resolve_backend
from ._resume import Resume


@dataclass(frozen=True, kw_only=True, eq=False)
class ResumeState:
    """Everything one run of some inputs leaves for resuming copies of it (`resume_state`).

    Attributes:
      inputs: the inputs that were run.
      streams: the residual stream entering each language layer 1 .. n_layers (index l - 1:
        RESID_POST of layer l - 1), ``(batch, seq, d_model)`` each.
      past: the run's cached keys and values (transformers' `DynamicCache`).
      position_ids: the position ids the language model received (None: derived from the cache
        position).
      answer_logits: the run's logits at the answer position.
    """

    inputs: VlmInputs
    streams: tuple[Tensor, ...]
    past: Any
    position_ids: Tensor | None
    answer_logits: Float[Tensor, "batch vocab"]

    def at(self, layer: int, start: int = 0) -> Resume:
        """The `Resume` at language layer `layer` (>= 1), from position `start` on (0: all)."""
        return Resume(layer=layer, hidden=self.streams[layer - 1], start=start,
                      past=self.past if start else None,
                      position_ids=self.position_ids if start else None)  # fmt: skip


def resume_state(vlm: VLM, inputs: VlmInputs, config: ExecutionConfig | None = None) -> ResumeState:
    """One plain run of `inputs` keeping what resuming copies of it needs: the stream entering
    every language layer, the cached keys and values, the position ids and the answer logits.

    Args:
      vlm: the model.
      inputs: the batch to run.
      config: where to run it (`backend`; the memory budget does not apply: one trace). Off
        the local backend the cache is not kept (it does not travel): `past` is None and the
        state resumes at layers only.

    Raises:
      GraphError: `inputs` is not a `VlmInputs`.
    """
    if not isinstance(inputs, VlmInputs):
        raise GraphError(
            f"resume_state needs VlmInputs (from vlm.encode); got {type(inputs).__name__}."
        )
    config = config or ExecutionConfig()
    backend = resolve_backend(config, vlm)
    keep = backend == "local"
    model, adapter = vlm.nnsight, vlm.adapter
    with (
        torch.no_grad(),
        model.trace(inputs.data, use_cache=keep, remote=remote_argument(backend), **config.extra),
    ):
        store = nnsight.save({})
        store["positions"] = adapter.read_position_ids(model)
        streams = nnsight.save([])
        for layer in range(adapter.n_layers):
            site = Site(layer=layer, component=Component.RESID_POST)
            streams.append(adapter.read(model, site, inputs, checked=True))
        store["logits"] = model.output.logits[:, -1]
        if keep:
            store["past"] = model.output.past_key_values
    return ResumeState(inputs=inputs, streams=tuple(streams), past=store.get("past"),
                       position_ids=store["positions"], answer_logits=store["logits"])  # fmt: skip
