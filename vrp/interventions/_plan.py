"""Planning a graph's patched runs so that they compute only what their patches can change.

A graph of activation patches (one run per patch, each a copy of the same corrupted inputs
patched from a clean run) would run every layer of every copy. The planner finds the runs whose
nodes are all `Patch`es into the language model from runs that write nothing, and that share their
inputs (the same `VlmInputs` object) with at least one other such run. Those runs:

1. take their patched values from one trace of the rest of the graph (each source site captured
   there whole, once, and every patch's positions and units selected from it);
2. share one plain run of their inputs (`resume_state`), which keeps the residual stream entering
   each layer they need and, on causal families, the keys and values of every position; when
   the rest of the graph only gives sources (no nodes of its own) and all rows have one length,
   1 and 2 are one trace of their stacked rows (`sources_and_state`);
3. run resumed, several per trace: each trace from the lowest layer one of its runs' patches
   touches (the layers below are the plain run's) and, on causal families, from the first
   position one of them selects (the earlier positions read from the cache), the stored values
   set by `Assign`. `trace_groups` chooses which runs share a trace: runs of neighbouring
   layers and positions, weighing the work a shared start computes for nothing against the
   fixed cost of another trace (`TRACE_COST`);
4. a run none of whose patches can reach the answer (`reaches_answer`: the last layer's output
   written away from the answer position) runs no trace: its logits are the plain run's.

Every part is validated as the whole graph is; results equal the plain execution (tests:
float64, 1e-10) and come back in one `GraphResult`. A patched value that cannot be stored (NaN or
inf) makes the graph run as written.
Other runs, graphs with fewer than two such runs per inputs, graphs whose patches all act at layer
0 (nothing to skip), graphs that keep no logits, and graphs sent to a server (the resumed streams
would travel with every trace) execute as written.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import cast

import torch
from torch import Tensor

from ..core import Component, ConfigError, GraphError, Site, Tower, select
from ..models import VLM, VlmInputs
from ._execute import Captured, ExecutionConfig, GraphResult, resolve_backend
from ._graph import Graph
from ._nodes import Assign, Capture, EdgePatch, Node, Patch
from ._plan_trace import sources_and_state
from ._resume import Resume
from ._resume_state import ResumeState, resume_state

_PLAN = "\0plan"
"""Names the captures the planner adds (never a user's capture name: it starts with NUL)."""


def resume_layer(site: Site, n_layers: int) -> int:
    """The first language layer a write at `site` can change (0: every layer runs)."""
    if site.component is Component.RESID_POST:
        return min(site.layer + 1, n_layers)
    return site.layer


def first_position(site: Site, inputs: VlmInputs) -> int:
    """The earliest position `site` selects in any row of `inputs` (a causal run can resume
    there: nothing before it changes)."""
    chosen = site.positions.resolve_cached(inputs.image_mask, inputs.attention_mask).any(dim=0)
    hits = chosen.nonzero()
    return int(hits[0]) if len(hits) else 0


def reaches_answer(site: Site, inputs: VlmInputs, n_layers: int) -> bool:
    """Whether a write at language `site` can change the answer logits: not when it writes the
    last layer's output (`RESID_POST` of layer `n_layers` - 1) away from the answer position in
    every row, since the final norm and the unembedding read each position alone (every family)
    and only the answer position's logits are read. Such a run's answer logits are the plain
    run's."""
    if resume_layer(site, n_layers) < n_layers:
        return True
    chosen = site.positions.resolve_cached(inputs.image_mask, inputs.attention_mask)
    return bool(chosen[:, -1].any())


def fits_selection(site: Site, value: Tensor, inputs: VlmInputs) -> bool:
    """Whether `value`, a selection of the stream site `site` (``batch seq ...``) taken from
    another batch, can be written to `site`'s selection on `inputs`, as `Assign` checks when it
    writes: one row or one per row, as many positions as each row selects, finite values. A run
    that runs no trace (`reaches_answer`) is checked with it instead."""
    chosen = site.positions.resolve_cached(inputs.image_mask, inputs.attention_mask)
    rows_fit = value.shape[0] in (1, inputs.batch_size)
    positions_fit = value.dim() >= 2 and bool((chosen.sum(dim=1) == value.shape[1]).all())
    return rows_fit and positions_fit and bool(torch.isfinite(value).all())


TRACE_COST = 128
"""A trace's fixed cost, in positions of one row per language layer it spans: the Python work of
a forward, whatever its batch. Measured on the organisms (CPU, width 128, 4 layers): a resumed
trace of one 8-row run over 8 positions and 3 layers took 8.6 ms and each further run 2.6 ms
(about 450 row-positions x layers per trace); with 1-row runs 9.4 ms and 0.4 ms. Wider models
spend more per position, so their true figure is smaller: this one errs towards fewer traces."""


MERGED_RUNS = 4
"""A range of layers merged into one split holds at most this many times `most` runs."""


@dataclass(frozen=True, kw_only=True)
class TraceGroup:
    """Runs that share one resumed trace: it starts at the lowest `layer` of its runs and, when
    that is above 0, at the first `position` any of them needs (0: every position)."""

    runs: tuple[int, ...]
    layer: int
    position: int


def trace_groups(
    starts: Sequence[int],
    layers: Sequence[int],
    *,
    seq_len: int,
    n_layers: int,
    rows: int,
    most: int,
) -> list[TraceGroup]:
    """Splits runs into resumed traces of at most `most` runs with the least estimated work.

    Run `i` needs layers `layers[i]` .. `n_layers` - 1 from position `starts[i]` on (a run
    resumed lower or earlier than it needs computes those layers and positions as the plain run
    did, for nothing). A trace costs `TRACE_COST` x `n_layers` plus, per run, `rows` x the
    positions x layers it computes; a trace holding a layer-0 run computes everything. The
    traces are contiguous ranges of the runs' layers (sorted), each split by first position;
    both splits are chosen by dynamic programming (a range is not tried once the work its
    lower layers would compute for nothing exceeds what the traces it saves cost, or once it
    holds more than `MERGED_RUNS` x `most` runs: merging layers pays only while their traces are
    part-filled, and this keeps the search near linear in the runs). Returns the groups, lowest
    layer first.

    Raises:
      ConfigError: `most` is not a whole number >= 1.
    """
    if isinstance(most, bool) or not isinstance(most, int) or most < 1:
        raise ConfigError(f"at most {most!r} runs per trace: give a whole number >= 1.")
    by_layer: dict[int, list[int]] = {}
    for i, layer in enumerate(layers):
        by_layer.setdefault(layer, []).append(i)
    distinct = sorted(by_layer)
    split = partial(_split_by_position, starts=starts, layers=layers, seq_len=seq_len,
                    n_layers=n_layers, rows=rows, most=most)  # fmt: skip
    alone = [split(by_layer[layer]) for layer in distinct]
    best: list[tuple[float, list[TraceGroup]]] = [(0.0, [])]
    for end in range(1, len(distinct) + 1):
        options = [(best[end - 1][0] + alone[end - 1][0], best[end - 1][1] + alone[end - 1][1])]
        waste, saved, held, above = 0, -1, len(by_layer[distinct[end - 1]]), 0
        for begin in range(end - 2, -1, -1):  # ranges of layers begin .. end - 1 in one split
            held += len(by_layer[distinct[begin]])
            if held > MERGED_RUNS * most:
                break
            saved += len(alone[begin + 1][1])
            above += sum(seq_len - starts[i] for i in by_layer[distinct[begin + 1]])
            waste += (distinct[begin + 1] - distinct[begin]) * above  # the runs above it
            if rows * waste >= TRACE_COST * n_layers * (saved + len(alone[begin][1])):
                break  # more work computed for nothing than the traces merging could save
            cost, groups = split([i for layer in distinct[begin:end] for i in by_layer[layer]])
            options.append((best[begin][0] + cost, best[begin][1] + groups))
        best.append(min(options, key=lambda option: option[0]))
    return best[-1][1]


def _split_by_position(  # noqa: PLR0913
    members: list[int], *, starts: Sequence[int], layers: Sequence[int], seq_len: int,
    n_layers: int, rows: int, most: int,
) -> tuple[float, list[TraceGroup]]:  # fmt: skip
    """The cheapest split of `members` into traces of neighbouring first positions (a layer-0
    run has none: it computes every position): (estimated cost, groups)."""
    first = {i: starts[i] if layers[i] else 0 for i in members}
    order = sorted(members, key=lambda i: first[i])
    n = len(order)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        low = n_layers
        for begin in range(end - 1, max(0, end - most) - 1, -1):
            low = min(low, layers[order[begin]])
            work = (end - begin) * rows * (seq_len - first[order[begin]]) * (n_layers - low)
            cost = best[begin] + TRACE_COST * n_layers + work
            if cost < best[end]:
                best[end], cut[end] = cost, begin
    groups, end = [], n
    while end:
        runs = tuple(order[cut[end] : end])
        low = min(layers[i] for i in runs)
        groups.append(TraceGroup(runs=runs, layer=low, position=first[runs[0]] if low else 0))
        end = cut[end]
    return best[n], groups[::-1]


def plannable(graph: Graph, runs: Mapping[str, VlmInputs]) -> dict[str, tuple[Patch, ...]]:
    """The runs the planner resumes, with their patches (see the module doc)."""
    writers = {n.run for n in graph.nodes if not isinstance(n, Capture)}
    sources = {n.source for n in graph.nodes if isinstance(n, Patch | EdgePatch)}
    by_run: dict[str, list[Node]] = {}
    for node in graph.nodes:
        by_run.setdefault(node.run, []).append(node)
    chosen: dict[str, tuple[Patch, ...]] = {}
    for run, nodes in by_run.items():
        patches = [n for n in nodes if isinstance(n, Patch)]
        if len(patches) != len(nodes) or run in sources:
            continue
        rows = runs[run].batch_size
        if all(p.source not in writers and p.source_positions is None
               and p.site.tower is Tower.LANGUAGE
               and runs[p.source].batch_size in (1, rows) for p in patches):  # fmt: skip
            chosen[run] = tuple(patches)
    groups: dict[int, list[str]] = {}
    for run in chosen:
        groups.setdefault(id(runs[run]), []).append(run)
    return {r: chosen[r] for group in groups.values() if len(group) >= 2 for r in group}


RUNS_PER_TRACE = 32
"""At most this many resumed runs share one trace (each trace also stays in the memory budget)."""

Execute = Callable[[Graph, Mapping[str, VlmInputs], Resume | None], GraphResult]
"""Runs one graph as written (the executor's plain path)."""


def run_planned(
    vlm: VLM,
    graph: Graph,
    runs: Mapping[str, VlmInputs],
    config: ExecutionConfig,
    execute: Execute,
) -> GraphResult | None:
    """The graph's result with its plannable runs resumed (see the module doc); None when no
    run is plannable."""
    local = resolve_backend(config, vlm) == "local"  # resumed streams would travel to a server
    planned = plannable(graph, runs) if local and config.keep_logits == "answer" else {}
    groups = [(inputs, *_chunks(vlm, planned, inputs, members))
              for inputs, members in _shared(planned, runs)]  # fmt: skip
    if not any(inert or any(layer for _, layer, _ in chunks) for _, chunks, inert in groups):
        return None  # nothing would skip a layer (all patches at layer 0): run as written
    patches = [p for run in planned for p in planned[run]]
    wholes = list(dict.fromkeys((p.source, p.site.whole) for p in patches))  # each read once
    captures = tuple(Capture(site=site, run=source, name=f"{_PLAN}{i}")
                     for i, (source, site) in enumerate(wholes))  # fmt: skip
    others = tuple(n for n in graph.nodes if n.run not in planned)
    rest = tuple(r for r in graph.runs if r not in planned)
    states: dict[int, ResumeState] = {}
    merged = None
    if not others and len(groups) == 1:  # the sources only capture: one trace with the state
        shared, chunks, _ = groups[0]
        merged = sources_and_state(vlm, {r: runs[r] for r in rest}, wholes, shared,
                                   _wanted(chunks), config)  # fmt: skip
    if merged is not None:
        read, logits, states[id(shared)] = merged
        kept: dict[str, Captured] = {}
    else:
        base = execute(Graph(nodes=others + captures, runs=rest), {r: runs[r] for r in rest},
                       None)  # fmt: skip
        read = {whole: base[f"{_PLAN}{i}"] for i, whole in enumerate(wholes)}
        logits = dict(base.answer_logits)
        kept = {name: c for name, c in base.captures.items() if not name.startswith(_PLAN)}
    values = {id(p): _selected(p, runs[p.source], read[(p.source, p.site.whole)])
              for p in patches}  # fmt: skip
    for inputs, chunks, inert in groups:
        wanted = _wanted(chunks)
        if id(inputs) not in states and (wanted or inert):
            keep = vlm.adapter.causal_prompt and bool(wanted)
            states[id(inputs)] = resume_state(vlm, inputs, config, layers=wanted, keep_cache=keep)
        state = states.get(id(inputs))
        for run in inert:  # its patches cannot reach the answer: the plain run's logits
            if not all(fits_selection(p.site, values[id(p)], inputs) for p in planned[run]):
                return None  # as written, its patch fails as it should (or copies a NaN)
            logits[run] = cast(ResumeState, state).answer_logits.clone()
        for chunk, layer, start in chunks:
            nodes = _assigns(chunk, planned, values)
            if nodes is None:
                return None
            resume = state.at(layer, start) if state is not None and layer else None
            done = execute(Graph(nodes=nodes, runs=tuple(chunk)), dict.fromkeys(chunk, inputs),
                           resume)  # fmt: skip
            logits.update(done.answer_logits)
    return GraphResult(captures=kept, answer_logits={r: logits[r] for r in graph.runs})


def _wanted(chunks: Sequence[tuple[list[str], int, int]]) -> set[int]:
    """The layers the chunks resume at (the streams their plain run must keep)."""
    return {layer for _, layer, _ in chunks} - {0}


def _selected(patch: Patch, source: VlmInputs, whole: Tensor) -> Tensor:
    """What `patch` copies from its source: the whole captured value narrowed to the patch's
    positions and units, as the executor narrows a capture of the patch's site."""
    mask = patch.site.positions.resolve_cached(source.image_mask, source.attention_mask)
    return select(patch.site, whole, mask.to(whole.device))


def _assigns(
    chunk: Sequence[str], planned: Mapping[str, tuple[Patch, ...]], values: Mapping[int, Tensor]
) -> tuple[Assign, ...] | None:
    """The chunk's patches as `Assign`s of the captured values; None when a value cannot be
    stored (NaN or inf, e.g. a float16 overflow): the graph then runs as written, copying it."""
    try:
        return tuple(Assign(site=p.site, value=values[id(p)], run=r)
                     for r in chunk for p in planned[r])  # fmt: skip
    except GraphError:
        return None


def _shared(
    planned: Mapping[str, tuple[Patch, ...]], runs: Mapping[str, VlmInputs]
) -> list[tuple[VlmInputs, list[str]]]:
    """The planned runs grouped by the inputs they share."""
    groups: dict[int, list[str]] = {}
    for run in planned:
        groups.setdefault(id(runs[run]), []).append(run)
    return [(runs[members[0]], members) for members in groups.values()]


def _chunks(
    vlm: VLM, planned: Mapping[str, tuple[Patch, ...]], inputs: VlmInputs, members: list[str]
) -> tuple[list[tuple[list[str], int, int]], list[str]]:
    """Runs of one inputs split into traces, (runs, layer, position) each trace resumes at, and
    the runs none of whose patches reaches the answer (`reaches_answer`), which need no trace."""
    n_layers, causal = vlm.adapter.n_layers, vlm.adapter.causal_prompt
    inert = [r for r in members
             if not any(reaches_answer(p.site, inputs, n_layers) for p in planned[r])]  # fmt: skip
    members = [r for r in members if r not in inert]
    layers = [min(resume_layer(p.site, n_layers) for p in planned[r]) for r in members]
    starts = [min(first_position(p.site, inputs) for p in planned[r]) if causal else 0
              for r in members]  # fmt: skip
    groups = trace_groups(starts, layers, seq_len=inputs.seq_len, n_layers=n_layers,
                          rows=inputs.batch_size, most=RUNS_PER_TRACE)  # fmt: skip
    return [([members[i] for i in g.runs], g.layer, g.position) for g in groups], inert
