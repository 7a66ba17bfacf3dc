"""`resume_state`: one run of some inputs, keeping what resuming copies of it needs (`Resume`)."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nnsight
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import Component, GraphError, Site
from ..models import VLM, VlmInputs
from ..models._remote import remote_argument
from ..models._resume import concat_caches
from ._execute import ExecutionConfig, _rows_per_trace, answer_only, resolve_backend
from ._resume import Resume


@dataclass(frozen=True, kw_only=True, eq=False)
class ResumeState:
    """Everything one run of some inputs leaves for resuming copies of it (`resume_state`).

    Attributes:
      inputs: the inputs that were run.
      streams: the residual stream entering each kept language layer l (1 .. n_layers:
        RESID_POST of layer l - 1), ``(batch, seq, d_model)`` each, by layer.
      past: the run's cached keys and values (transformers' `DynamicCache`); None when not kept
        (or off the local backend).
      position_ids: the position ids the language model received (None: derived from the cache
        position).
      answer_logits: the run's logits at the answer position.
    """

    inputs: VlmInputs
    streams: dict[int, Tensor]
    past: Any
    position_ids: Tensor | None
    answer_logits: Float[Tensor, "batch vocab"]

    def at(self, layer: int, start: int = 0) -> Resume:
        """The `Resume` at language layer `layer` (>= 1), from position `start` on (0: all).

        Raises:
          GraphError: the stream entering `layer` was not kept, or `start` > 0 without a cache.
        """
        if layer not in self.streams:
            raise GraphError(
                f"this state kept the streams entering layers {sorted(self.streams)}, not {layer}; "
                "pass layers=None (all) or include it in resume_state(..., layers=...)."
            )
        if start and self.past is None:
            raise GraphError(
                "this state holds no key-value cache (keep_cache=False, or computed remotely): "
                "resume it at start=0."
            )
        return Resume(layer=layer, hidden=self.streams[layer], start=start,
                      past=self.past if start else None,
                      position_ids=self.position_ids if start else None,
                      source=self.inputs)  # fmt: skip


def resume_state(
    vlm: VLM,
    inputs: VlmInputs,
    config: ExecutionConfig | None = None,
    *,
    layers: Iterable[int] | None = None,
    keep_cache: bool = True,
) -> ResumeState:
    """One plain run of `inputs` keeping what resuming copies of it needs: the streams entering
    the language layers asked for, the cached keys and values, the position ids and the answer
    logits.

    What it holds stays in memory while the copies run: each kept stream is one residual stream
    of the batch (``batch x seq x d_model``), the cache two such tensors per layer (at the
    key-value width). Keep only the layers resumed at, and the cache only for position resumes.

    Args:
      vlm: the model.
      inputs: the batch to run.
      config: where to run it (`backend`) and the memory budget, which splits the rows over
        several traces as `run_graph` does. Off the local backend no cache is kept (it does not
        travel to a client).
      layers: the layers (1 .. n_layers) whose entering stream to keep; None keeps all.
      keep_cache: keep the key-value cache (needed to resume at a position > 0).

    Raises:
      GraphError: `inputs` is not a `VlmInputs`, or a layer out of range.
    """
    if not isinstance(inputs, VlmInputs):
        raise GraphError(
            f"resume_state needs VlmInputs (from vlm.encode); got {type(inputs).__name__}."
        )
    n_layers = vlm.adapter.n_layers
    wanted = sorted(set(range(1, n_layers + 1) if layers is None else layers))
    if any(not 1 <= layer <= n_layers for layer in wanted):
        raise GraphError(f"resume_state: layers must lie in 1..{n_layers}; got {wanted}.")
    config = config or ExecutionConfig()
    backend = resolve_backend(config, vlm)
    keep = keep_cache and backend == "local"
    step = _rows_per_trace(vlm, inputs, 1, config)
    parts = [
        _run_rows(vlm, inputs.rows(list(range(i, min(i + step, inputs.batch_size))), trim=False)
                  if step < inputs.batch_size else inputs, wanted, keep, backend, config)
        for i in range(0, inputs.batch_size, step)
    ]  # fmt: skip
    return ResumeState(
        inputs=inputs,
        streams={layer: torch.cat([p["streams"][layer] for p in parts]) for layer in wanted},
        past=concat_caches([p["past"] for p in parts]) if keep else None,
        position_ids=_join_positions([p["positions"] for p in parts]),
        answer_logits=torch.cat([p["logits"] for p in parts]),
    )


def _run_rows(  # noqa: PLR0913
    vlm: VLM, inputs: VlmInputs, wanted: list[int], keep: bool, backend: str,
    config: ExecutionConfig,
) -> dict[str, Any]:  # fmt: skip
    """One trace of `inputs`: the wanted streams, the logits, the position ids and the cache."""
    model, adapter = vlm.nnsight, vlm.adapter
    with (
        torch.no_grad(),
        model.trace(
            inputs.data,
            use_cache=keep,
            remote=remote_argument(backend),
            **answer_only(config).extra,
        ),
    ):
        store = nnsight.save({})
        store["positions"] = adapter.read_position_ids(model)
        streams = nnsight.save({})
        for layer in wanted:
            site = Site(layer=layer - 1, component=Component.RESID_POST)
            streams[layer] = adapter.read(model, site, inputs, checked=True)
        store["logits"] = model.output.logits[:, -1]
        if keep:
            store["past"] = model.output.past_key_values
    return {**store, "streams": dict(streams)}


def _join_positions(parts: list[Tensor | None]) -> Tensor | None:
    """Position ids of the chunks joined along their batch axis (M-RoPE ids: ``3 batch seq``);
    ids without one (shared by every row, or None) are the same in every chunk."""
    first = parts[0]
    if first is None or first.dim() < 3 or len(parts) == 1:
        return first
    return torch.cat([p for p in parts if p is not None], dim=-2)
