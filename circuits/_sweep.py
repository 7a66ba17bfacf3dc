"""Activation-patching sweeps: one generic engine and thin, named specialisations.

Every cell of a sweep patches one site from the clean run into its own copy of the corrupted run,
and a sweep computes only what a patch can change. The corrupted inputs run once
(`vrp.interventions.resume_state`: the stream entering every layer, the cached keys and values,
the baseline) and the clean inputs once (every cell's clean value, the other baseline), both
in one trace of their stacked rows where they can share one (`sources_and_state`); the cells
then run in groups of neighbouring layers, at most `cells_per_trace` copies per trace, each
trace resumed at its lowest layer (the layers below are not run) with the cells' clean values set
(`Assign`). On causal families (LLaVA, Qwen2-VL) run locally, a group's cells are split by
position and each trace also starts at its first cell's position, the earlier positions' keys
and values taken from the cache (`vrp.interventions.trace_groups` picks the groups with the least
estimated work). Both are
exact (a layer's output depends only on earlier layers; a causal position only on earlier
positions). A pool of replicas (`pool=`) runs the same resumed traces. Cells of a model variant
(`base`) or of the vision tower run the plain way instead: every layer, the clean run as the
source in every trace. A metric maps
answer-position logits to one number per row; scores are reported raw and normalised so that 0 is
the corrupted run and 1 the clean run.
"""

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from vrp import Component, ConfigError, GraphError, LastToken, Positions, Site, Tower
from vrp.core import TidyRecords, select
from vrp.interventions import (
    Assign,
    Capture,
    ExecutionConfig,
    Graph,
    GraphPool,
    GraphResult,
    Node,
    Patch,
    Resume,
    ResumeState,
    first_position,
    fits_selection,
    reaches_answer,
    resolve_backend,
    resume_layer,
    resume_state,
    run_graph,
    run_jobs,
    sources_and_state,
    trace_groups,
)
from vrp.models import VLM, VlmInputs

Metric = Callable[[Float[Tensor, "batch vocab"]], Float[Tensor, " batch"]]
"""Maps answer-position logits to one score per row (higher = more like the clean answer)."""


def yes_no_metric(vlm: VLM) -> Metric:
    """The model's best "yes" logit minus its best "no" logit."""
    return vlm.yes_no_margin


@dataclass(frozen=True, kw_only=True)
class PatchResult(TidyRecords):
    """Scores of a patching sweep, with the coordinates of every cell.

    Attributes:
      sites: the patched site of each cell.
      scores: mean metric over rows after patching each cell.
      clean: mean metric on the clean run (upper baseline).
      corrupt: mean metric on the corrupted run (lower baseline).
      per_row: the metric per cell and row, for paired statistics.
      clean_per_row: the metric of each row's clean run.
      corrupt_per_row: the metric of each row's corrupted run.
    """

    sites: tuple[Site, ...]
    scores: Float[Tensor, " site"]
    clean: float
    corrupt: float
    per_row: Float[Tensor, "site batch"]
    clean_per_row: Float[Tensor, " batch"]
    corrupt_per_row: Float[Tensor, " batch"]

    @property
    def normalised(self) -> Float[Tensor, " site"]:
        """(score - corrupt) / (clean - corrupt): 1 = the cell restores the clean answer fully.

        Raises:
          ConfigError: the clean and corrupted runs score the same (nothing to restore).
        """
        gap = self.clean - self.corrupt
        if abs(gap) < 1e-8:
            raise ConfigError(
                f"Clean and corrupted runs score the same ({self.clean:.4g}); choose a corruption "
                "that changes the metric before normalising a sweep."
            )
        return (self.scores - self.corrupt) / gap

    @property
    def normalised_per_row(self) -> Float[Tensor, "site batch"]:
        """Each row normalised by its own runs: (metric - corrupt_row) / (clean_row - corrupt_row);
        NaN for a row whose clean and corrupted runs score the same (|gap| < 1e-8)."""
        gap = self.clean_per_row - self.corrupt_per_row
        safe = torch.where(gap.abs() < 1e-8, torch.full_like(gap, float("nan")), gap)
        return (self.per_row - self.corrupt_per_row) / safe

    def to_records(self) -> list[dict[str, Any]]:
        """One row per cell per batch row: the cell's site (tower, layer, component, heads,
        neurons, positions), the row, its metric after patching, its clean and corrupted metric
        and the row's normalised score (NaN where its clean and corrupted runs tie)."""
        normalised = self.normalised_per_row.tolist()
        raw = self.per_row.tolist()
        clean, corrupt = self.clean_per_row.tolist(), self.corrupt_per_row.tolist()
        rows = []
        for cell, site in enumerate(self.sites):
            where = {"cell": cell, "tower": site.tower.value, "layer": site.layer,
                     "component": site.component.value, "heads": _units(site.heads),
                     "neurons": _units(site.neurons), "positions": str(site.positions)}  # fmt: skip
            for row in range(len(clean)):
                rows.append({**where, "row": row, "metric": raw[cell][row], "clean": clean[row],
                             "corrupt": corrupt[row], "normalised": normalised[cell][row]})  # fmt: skip
        return rows


def _units(units: tuple[int, ...] | None) -> str:
    return "" if units is None else ",".join(map(str, units))


def patch_sweep(  # noqa: PLR0913  (keyword-only knobs after the four data arguments)
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    sites: Sequence[Site],
    metric: Metric,
    *,
    cells_per_trace: int = 32,
    config: ExecutionConfig | None = None,
    base: Sequence[Node] = (),
    pool: GraphPool | None = None,
) -> PatchResult:
    """Patches each site from `clean` into `corrupt` (row by row) and scores the result.

    Args:
      vlm: the model.
      clean: source batch; row i pairs with row i of `corrupt`.
      corrupt: target batch (same number of rows).
      sites: the cells; selectors (heads, neurons, positions) narrow each patch.
      metric: scores answer-position logits per row.
      cells_per_trace: cells run together in one trace at most (bounds memory); a sweep
        resumed at positions may run fewer per trace, where that computes less.
      config: execution settings passed to `run_graph`.
      base: nodes that define the model variant studied (e.g. attention knockouts or an
        ablation), applied to every run, the clean and corrupted baselines included; their
        `run` is ignored.
      pool: runs the traces in parallel on replicas of the model (e.g. `RayGraphPool`): the
        same traces, so the same scores (`config` is then unused for them). Each resumed trace
        carries its stream and cache to the replica.

    Raises:
      ConfigError: the batches differ in size, or no sites are given.
      GraphError: a site does not exist in the model.
    """
    if clean.batch_size != corrupt.batch_size:
        raise ConfigError(
            f"Patching pairs rows: clean has {clean.batch_size} rows, corrupt {corrupt.batch_size}."
        )
    if not sites:
        raise ConfigError("patch_sweep needs at least one site.")
    sourced = [type(n).__name__ for n in base if getattr(n, "source", None) is not None]
    if sourced:
        raise ConfigError(
            f"patch_sweep: base nodes define the model variant of every run and cannot read "
            f"another run; got {sourced}. Use ablations, steering or knockouts as base nodes."
        )
    if not base and all(s.tower is Tower.LANGUAGE for s in sites):
        rows, baseline = _resumed_sweep(vlm, (clean, corrupt), sites, metric,
                                        (cells_per_trace, config, pool))  # fmt: skip
    else:
        rows, baseline = _full_sweep(vlm, (clean, corrupt), sites, metric,
                                     (cells_per_trace, config, base, pool))  # fmt: skip
    return PatchResult(
        sites=tuple(sites),
        scores=rows.mean(dim=1),
        clean=float(baseline["clean"].mean()),
        corrupt=float(baseline["corrupt"].mean()),
        per_row=rows,
        clean_per_row=baseline["clean"],
        corrupt_per_row=baseline["corrupt"],
    )


def _resumed_sweep(
    vlm: VLM,
    pair: tuple[VlmInputs, VlmInputs],
    sites: Sequence[Site],
    metric: Metric,
    how: tuple[int, ExecutionConfig | None, GraphPool | None],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Language-tower cells, computing only what a patch can change (see the module doc); the
    cells' traces go to `pool` when one is given (the same traces, so the same scores)."""
    (clean, corrupt), (cells_per_trace, config, pool) = pair, how
    n_layers = vlm.adapter.n_layers
    distinct = list(dict.fromkeys(sites))
    backend = resolve_backend(config, vlm)
    cached = vlm.adapter.causal_prompt and backend == "local"
    first = {s: first_position(s, corrupt) if cached else 0 for s in distinct}
    live = [i for i, s in enumerate(sites) if reaches_answer(s, corrupt, n_layers)]
    groups = trace_groups([first[sites[i]] for i in live],
                          [resume_layer(sites[i], n_layers) for i in live],
                          seq_len=corrupt.seq_len, n_layers=n_layers, rows=corrupt.batch_size,
                          most=cells_per_trace)  # fmt: skip
    groups = [dataclasses.replace(g, runs=tuple(live[i] for i in g.runs)) for g in groups]
    starts = {g.layer for g in groups} - {0}  # the streams a trace resumes from
    values, clean_logits, state = _clean_and_state(vlm, (clean, corrupt), distinct, starts, config)
    baseline = {"clean": metric(clean_logits), "corrupt": metric(state.answer_logits)}
    value = dict(zip(distinct, values, strict=True))
    jobs: list[tuple[Graph, dict[str, VlmInputs], Resume | None]] = []
    chunks: list[tuple[int, ...]] = []
    for group in groups:
        nodes = tuple(Assign(site=sites[i], value=value[sites[i]], run=f"cell{i}")
                      for i in group.runs)  # fmt: skip
        graph = Graph(nodes=nodes, runs=tuple(f"cell{i}" for i in group.runs))
        resume = state.at(group.layer, group.position) if group.layer else None
        jobs.append((graph, dict.fromkeys(graph.runs, corrupt), resume))
        chunks.append(group.runs)
    results: Iterable[GraphResult] = (
        (run_graph(vlm, g, dict(inputs), config, resume=r) for g, inputs, r in jobs)
        if pool is None else run_jobs(vlm, jobs, pool)
    )  # fmt: skip
    inert = set(range(len(sites))) - set(live)  # patches that cannot reach the answer
    for i in sorted(inert):
        if not fits_selection(sites[i], value[sites[i]], corrupt):
            raise GraphError(
                f"patch at {sites[i]}: the clean value (shape {tuple(value[sites[i]].shape)}) "
                "does not fit the corrupted rows' selection there (other rows or positions "
                "per row, or values that are not finite). Patch between batches whose rows "
                "select the same number of positions."
            )
    per_row = dict.fromkeys(inert, baseline["corrupt"])
    for result, chunk in zip(results, chunks, strict=True):
        per_row.update({i: metric(result.answer_logits[f"cell{i}"]) for i in chunk})
    return torch.stack([per_row[i] for i in range(len(sites))]), baseline


def _clean_and_state(
    vlm: VLM,
    pair: tuple[VlmInputs, VlmInputs],
    sites: Sequence[Site],
    layers: set[int],
    config: ExecutionConfig | None,
) -> tuple[list[Tensor], Tensor, ResumeState]:
    """Each site's clean value (what `Patch` from the clean run would copy), the clean answer
    logits, and the corrupted run's state for resuming (`resume_state`, keeping the streams
    entering `layers`): from one trace of both batches' rows where they can share one
    (`sources_and_state`; local backend), else one trace each. Each whole (layer, component)
    is read once; the cells' selections are taken here, as the executor takes them."""
    clean, corrupt = pair
    whole = list(dict.fromkeys(s.whole for s in sites))
    captures = tuple(Capture(site=w, name=f"w{i}") for i, w in enumerate(whole))
    Graph(nodes=captures).validate(vlm, {"main": clean})  # the checks run_graph would make
    local = resolve_backend(config, vlm) == "local"
    merged = (
        sources_and_state(vlm, {"clean": clean}, [("clean", w) for w in whole], corrupt, layers,
                          config or ExecutionConfig())
        if local else None
    )  # fmt: skip
    if merged is not None:
        read, logits, state = merged
        full = {w: read[("clean", w)] for w in whole}
        clean_logits = logits["clean"]
    else:
        cached = vlm.adapter.causal_prompt and local
        state = resume_state(vlm, corrupt, config, layers=layers, keep_cache=cached)
        result = run_graph(vlm, Graph(nodes=captures), clean, config)
        full = {w: result[f"w{i}"] for i, w in enumerate(whole)}
        clean_logits = result.answer_logits["main"]
    values = []
    for site in sites:
        value = full[site.whole]
        mask = site.positions.resolve(clean.image_mask, clean.attention_mask).to(value.device)
        values.append(select(site, value, mask))
    return values, clean_logits, state


def _full_sweep(
    vlm: VLM,
    pair: tuple[VlmInputs, VlmInputs],
    sites: Sequence[Site],
    metric: Metric,
    how: tuple[int, ExecutionConfig | None, Sequence[Node], GraphPool | None],
) -> tuple[Tensor, dict[str, Tensor]]:
    """Every cell a `Patch` from the clean run, each chunk one trace with both baselines (the
    path for model variants and vision cells)."""
    (clean, corrupt), (cells_per_trace, config, base, pool) = pair, how
    jobs, chunks = [], []
    for start in range(0, len(sites), cells_per_trace):
        chunk = list(sites[start : start + cells_per_trace])
        names = [f"cell{start + i}" for i in range(len(chunk))]
        nodes = tuple(
            Patch(site=s, source="clean", run=n) for s, n in zip(chunk, names, strict=True)
        )
        variant = tuple(dataclasses.replace(n, run=r) for r in ("clean", "corrupt", *names)
                        for n in base)  # fmt: skip
        graph = Graph(nodes=variant + nodes, runs=("clean", "corrupt", *names))
        jobs.append((graph, {"clean": clean, "corrupt": corrupt, **dict.fromkeys(names, corrupt)}))
        chunks.append(names)
    results: Iterable[GraphResult] = (
        (run_graph(vlm, graph, dict(inputs), config) for graph, inputs in jobs)  # one at a time
        if pool is None else run_jobs(vlm, jobs, pool)
    )  # fmt: skip
    per_row: list[Tensor] = []
    baseline: dict[str, Tensor] = {}
    for result, names in zip(results, chunks, strict=True):
        logits = result.answer_logits  # kept only while its metrics are taken
        baseline = baseline or {k: metric(logits[k]) for k in ("clean", "corrupt")}
        per_row += [metric(logits[n]) for n in names]
    return torch.stack(per_row), baseline


def _layer_sites(vlm: VLM, component: Component, positions: Positions) -> list[Site]:
    return [Site(layer=i, component=component, positions=positions)
            for i in range(vlm.adapter.n_layers)]  # fmt: skip


def patch_resid_by_layer(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, metric: Metric,
    positions: Positions | None = None,
) -> PatchResult:  # fmt: skip
    """Patches the residual stream after each language layer (at the answer token by default)."""
    sites = _layer_sites(vlm, Component.RESID_POST, positions or LastToken())
    return patch_sweep(vlm, clean, corrupt, sites, metric)


def patch_attn_by_layer(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, metric: Metric,
    positions: Positions | None = None,
) -> PatchResult:  # fmt: skip
    """Patches each layer's attention output."""
    sites = _layer_sites(vlm, Component.ATTN_OUT, positions or LastToken())
    return patch_sweep(vlm, clean, corrupt, sites, metric)


def patch_mlp_by_layer(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, metric: Metric,
    positions: Positions | None = None,
) -> PatchResult:  # fmt: skip
    """Patches each layer's MLP output."""
    sites = _layer_sites(vlm, Component.MLP_OUT, positions or LastToken())
    return patch_sweep(vlm, clean, corrupt, sites, metric)


def patch_heads(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, metric: Metric,
    positions: Positions | None = None,
) -> PatchResult:  # fmt: skip
    """Patches every (layer, head) output, one head per cell."""
    n_heads = vlm.adapter.shape(Tower.LANGUAGE).n_heads
    sites = [Site(layer=i, component=Component.HEAD_OUT, heads=(h,), positions=positions or LastToken())
             for i in range(vlm.adapter.n_layers) for h in range(n_heads)]  # fmt: skip
    return patch_sweep(vlm, clean, corrupt, sites, metric)
