"""The planner's first trace, when it can be one: the sources' whole values and the shared
inputs' plain run (what `resume_state` keeps) in one forward of their stacked rows.

A planned graph otherwise runs two traces before its resumed ones: the rest of the graph (the
source runs, which only capture here) and the plain run of the patched copies' inputs. On small
models a trace is mostly fixed cost, so stacking them saves most of one. Rows do not interact,
so every row computes what it would alone; the stacking needs rows of one length (no extra
padding shifts a position), one kind of processor output and one image grid, and no memory
budget (which would split rows into traces of its own choosing). Otherwise `None`: the planner
runs the two traces.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import nnsight
import torch
from torch import Tensor

from ..core import Component, ShapeError, Site, sort_sites
from ..models import VLM, VlmInputs, concat_inputs
from ..models._resume import tiled_cache
from ._execute import ExecutionConfig, answer_only
from ._resume_state import ResumeState

Read = tuple[dict[tuple[str, Site], Tensor], dict[str, Tensor], ResumeState]
"""The sources' whole values by (run, site), their answer logits by run, the shared state."""


def sources_and_state(  # noqa: PLR0913
    vlm: VLM,
    sources: Mapping[str, VlmInputs],
    wholes: Sequence[tuple[str, Site]],
    inputs: VlmInputs,
    layers: set[int],
    config: ExecutionConfig,
) -> Read | None:
    """One trace of the `sources` runs (their values at `wholes`, whole language sites, and
    their answer logits) stacked with `inputs` (the streams entering `layers`, the position ids,
    the answer logits and, on causal families with `layers`, the key-value cache); None when
    they cannot share a trace (see the module doc)."""
    parts = [*sources.values(), inputs]
    if config.memory_budget_mb is not None or len({p.seq_len for p in parts}) != 1:
        return None
    try:
        stacked = concat_inputs(parts)
    except ShapeError:
        return None
    streams = {layer: Site(layer=layer - 1, component=Component.RESID_POST) for layer in layers}
    reads = sort_sites(list(dict.fromkeys([site for _, site in wholes] + list(streams.values()))))
    keep = vlm.adapter.causal_prompt and bool(layers)
    store = _trace(vlm, stacked, reads, keep, config)
    spans, start = {}, 0
    for name, part in [*sources.items(), ("\0state", inputs)]:
        spans[name] = slice(start, start + part.batch_size)
        start += part.batch_size
    value = dict(zip(reads, store["values"], strict=True))
    own, total = spans["\0state"], stacked.batch_size
    state = ResumeState(  # copies of its own rows: no view keeps the stacked batch alive
        inputs=inputs,
        streams={layer: value[site][own].clone() for layer, site in streams.items()},
        past=tiled_cache(store["past"], range(own.start, own.stop), inputs.seq_len, 1, vlm.device)
        if keep
        else None,  # fmt: skip
        position_ids=_rows(store["positions"], own, total),
        answer_logits=store["logits"][own].clone(),
    )
    read = {(run, site): value[site][spans[run]].clone() for run, site in wholes}
    logits = {run: store["logits"][spans[run]].clone() for run in sources}
    return read, logits, state


def _trace(
    vlm: VLM, stacked: VlmInputs, reads: list[Site], keep: bool, config: ExecutionConfig
) -> dict[str, Any]:
    model, adapter = vlm.nnsight, vlm.adapter
    with torch.no_grad(), model.trace(stacked.data, use_cache=keep, **answer_only(config).extra):
        store = nnsight.save({})
        store["positions"] = adapter.read_position_ids(model)
        store["values"] = [adapter.read(model, site, stacked, checked=True) for site in reads]
        store["logits"] = model.output.logits[:, -1]
        if keep:
            store["past"] = model.output.past_key_values
    return dict(store)


def _rows(positions: Tensor | None, rows: slice, total: int) -> Tensor | None:
    """The position ids of `rows` (ids with a batch axis, e.g. M-RoPE's ``3 batch seq``, are
    narrowed; ids shared by every row are kept)."""
    if positions is None or positions.dim() < 2 or positions.shape[-2] != total:
        return positions
    return positions[..., rows, :].clone()
