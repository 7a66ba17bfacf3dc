"""Edges measured exactly: single-edge patching, and edge-level circuit discovery.

An edge (sender, receiver) is one component's output as one later block reads it (see
`vrp.interventions.EdgePatch`). `edge_patching` measures what `edge_attribution` estimates:
the corrupted run with one edge carrying its sender's clean value. `discover_edges` ranks the
edges by edge attribution (EAP, or EAP-IG) and verifies growing top-k sets exactly, "keep the
circuit, ablate the rest": the clean rows with every edge outside the set carrying its sender's
corrupted value. With every edge ablated that run is the corrupted run, so faithfulness is
``sum s (M_k - M_corrupt) / sum |M_clean - M_corrupt|`` pooled over pairs (bootstrap CI).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jaxtyping import Float

from vrp import Component, ConfigError, Site
from vrp.core import TidyRecords
from vrp.interventions import EdgePatch, ExecutionConfig, Graph, GraphPool, Job, run_jobs
from vrp.models import VLM, VlmInputs
from vrp.stats import Estimate

from ._attribution import _check_pair
from ._discovery import _sizes, curve_records, kept_share, smallest_reaching
from ._edges import EdgeAttribution, edge_attribution
from ._sweep import Metric

Edge = tuple[Site, Site]
"""(sender, receiver): see `vrp.interventions.EdgePatch`."""


def edge_universe(vlm: VLM) -> tuple[Edge, ...]:
    """Every edge of the language model: from the embeddings and each attention and MLP output
    to each later attention and MLP input and to the logits, in forward order."""
    n = vlm.adapter.n_layers
    senders = [Site(layer=0, component=Component.RESID_PRE)]
    receivers = []
    for layer in range(n):
        senders += [Site(layer=layer, component=c) for c in (Component.ATTN_OUT, Component.MLP_OUT)]
        receivers += [Site(layer=layer, component=c) for c in (Component.ATTN_IN, Component.MLP_IN)]
    receivers.append(Site(layer=n - 1, component=Component.RESID_POST))
    return tuple((s, r) for s in senders for r in receivers if r.order > s.order)


def edge_name(edge: Edge) -> str:
    """ "embed->attn2", "mlp0->logits": the names `EdgeAttribution` uses."""
    sender, receiver = edge
    source = {Component.RESID_PRE: "embed", Component.ATTN_OUT: f"attn{sender.layer}",
              Component.MLP_OUT: f"mlp{sender.layer}"}[sender.component]  # fmt: skip
    target = {Component.ATTN_IN: f"attn{receiver.layer}", Component.MLP_IN: f"mlp{receiver.layer}",
              Component.RESID_POST: "logits"}[receiver.component]  # fmt: skip
    return f"{source}->{target}"


def attributed(eap: EdgeAttribution, edges: Sequence[Edge]) -> Float[np.ndarray, " edge"]:
    """Each edge's pooled EAP score (`EdgeAttribution.pooled`), in the order of `edges`."""
    pooled = eap.pooled()
    up, down = (
        {n: i for i, n in enumerate(eap.upstream)},
        {n: j for j, n in enumerate(eap.downstream)},
    )
    names = [edge_name(e).split("->") for e in edges]
    return np.array([pooled[up[u], down[d]] for u, d in names])


def _edge_metrics(  # noqa: PLR0913  (keyword-only knobs after the data arguments)
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    variants: Mapping[str, tuple[str, tuple[Edge, ...]]],
    metric: Metric,
    *,
    runs_per_trace: int,
    pool: GraphPool | None,
    config: ExecutionConfig | None,
) -> dict[str, np.ndarray]:
    """The metric of each variant, a (base run, edges patched from the other run) pair, and of
    the plain "clean" and "corrupt" runs; `runs_per_trace` variants share a trace."""
    inputs = {"clean": clean, "corrupt": corrupt}
    other = {"clean": "corrupt", "corrupt": "clean"}
    names, jobs = list(variants), list[Job]()
    for start in range(0, max(len(names), 1), runs_per_trace):
        chunk = names[start : start + runs_per_trace]
        nodes = tuple(EdgePatch(run=name, source=other[variants[name][0]], edges=variants[name][1])
                      for name in chunk if variants[name][1])  # fmt: skip
        runs = {"clean": clean, "corrupt": corrupt,
                **{name: inputs[variants[name][0]] for name in chunk}}  # fmt: skip
        jobs.append((Graph(nodes=nodes, runs=tuple(runs)), runs))
    out: dict[str, np.ndarray] = {}
    for result in run_jobs(vlm, jobs, pool, config):
        out.update({n: metric(v).detach().float().cpu().numpy()
                    for n, v in result.answer_logits.items()})  # fmt: skip
    return out


@dataclass(frozen=True, kw_only=True)
class EdgeEffects(TidyRecords):
    """Exact effects of patching single edges from the clean rows into the corrupted ones.

    Attributes:
      edges: the edges, as (sender, receiver) sites.
      effects: `(pair, edge)` metric of the patched run minus the corrupted run's.
      clean_metric, corrupt_metric: each pair's metric in the two plain runs.
    """

    edges: tuple[Edge, ...]
    effects: Float[np.ndarray, "pair edge"] = field(repr=False)
    clean_metric: Float[np.ndarray, " pair"] = field(repr=False)
    corrupt_metric: Float[np.ndarray, " pair"] = field(repr=False)

    def pooled(self) -> Float[np.ndarray, " edge"]:
        """Each edge's effect oriented towards the clean answer and pooled over pairs, in units
        of the mean |clean - corrupt| gap (the scale of `EdgeAttribution.pooled`).

        Raises:
          ConfigError: the clean and corrupted runs score the same on every pair.
        """
        gap = self.clean_metric - self.corrupt_metric
        if float(np.abs(gap).mean()) == 0:
            raise ConfigError("the clean and corrupted runs score the same on every pair.")
        return (np.sign(gap)[:, None] * self.effects).mean(axis=0) / np.abs(gap).mean()

    def to_records(self) -> list[dict[str, Any]]:
        """One row per edge per pair: edge, sender, receiver, pair, effect."""
        return [{"edge": edge_name(e), "sender": str(e[0]), "receiver": str(e[1]), "pair": p,
                 "effect": float(self.effects[p, i])}
                for i, e in enumerate(self.edges) for p in range(self.effects.shape[0])]  # fmt: skip


def edge_patching(  # noqa: PLR0913  (keyword-only knobs after the data arguments)
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    edges: Sequence[Edge],
    *,
    metric: Metric | None = None,
    runs_per_trace: int = 16,
    pool: GraphPool | None = None,
    config: ExecutionConfig | None = None,
) -> EdgeEffects:
    """Patches each edge alone from the clean rows into the corrupted ones (exact, one run per
    edge, `runs_per_trace` runs per trace): the quantity edge attribution estimates. `config`
    applies to every trace: its `memory_budget_mb` splits the rows of a trace so that their
    activations and the differences each edge patch keeps fit.

    Raises:
      ConfigError: misaligned rows or no edges.
      GraphError: a pair of sites that is not an edge (the message names it).
    """
    _check_pair(clean, corrupt)
    if not edges:
        raise ConfigError("edge_patching needs at least one edge; see circuits.edge_universe.")
    metric = metric or vlm.yes_no_margin
    variants = {f"e{i}": ("corrupt", ((e[0], e[1]),)) for i, e in enumerate(edges)}
    metrics = _edge_metrics(vlm, clean, corrupt, variants, metric, runs_per_trace=runs_per_trace,
                            pool=pool, config=config)  # fmt: skip
    effects = np.stack([metrics[f"e{i}"] - metrics["corrupt"] for i in range(len(edges))], axis=1)
    return EdgeEffects(edges=tuple((s, r) for s, r in edges), effects=effects,
                       clean_metric=metrics["clean"], corrupt_metric=metrics["corrupt"])  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EdgeCircuit:
    """Edges kept out of a universe: "keep the circuit, ablate the rest" at the edge level.

    Attributes:
      edges: the kept edges.
      universe: every candidate edge (the rest carry their sender's corrupted value).
      faithfulness: the share of the clean behaviour the circuit alone keeps, where measured.
    """

    edges: tuple[Edge, ...]
    universe: tuple[Edge, ...]
    faithfulness: float | None = None

    def __post_init__(self) -> None:
        universe = set(self.universe)
        outside = [edge_name(e) for e in self.edges if e not in universe]
        if outside:
            raise ConfigError(f"circuit edges {outside} are not in its universe.")

    @property
    def ablated(self) -> tuple[Edge, ...]:
        """The universe's edges outside the circuit."""
        kept = set(self.edges)
        return tuple(e for e in self.universe if e not in kept)

    def graph(self, *, run: str = "clean", source: str = "corrupt") -> Graph:
        """The intervention graph keeping the circuit: one `EdgePatch` of every ablated edge
        from run `source` into run `run` (a graph with no node when nothing is ablated)."""
        nodes = (EdgePatch(run=run, source=source, edges=self.ablated),) if self.ablated else ()
        return Graph(nodes=nodes, runs=(run, source))

    def to_json(self) -> dict[str, Any]:
        def pairs(edges: Sequence[Edge]) -> list[list[dict[str, Any]]]:
            return [[s.to_dict(), r.to_dict()] for s, r in edges]

        return {"format": "vrp-edge-circuit", "version": 1, "faithfulness": self.faithfulness,
                "edges": pairs(self.edges), "universe": pairs(self.universe)}  # fmt: skip

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "EdgeCircuit":
        """A circuit from `to_json`'s dict.

        Raises:
          ConfigError: not an edge circuit, or malformed edges.
        """
        if not isinstance(value, Mapping) or value.get("format") != "vrp-edge-circuit":
            raise ConfigError(
                "not a VRP edge circuit: expected a dict with format 'vrp-edge-circuit' "
                "(EdgeCircuit.to_json)."
            )
        try:
            edges, universe = (
                tuple((Site.from_dict(s), Site.from_dict(r)) for s, r in value[key])
                for key in ("edges", "universe")
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"malformed edge circuit: {err}. Write it with to_json.") from None
        return cls(edges=edges, universe=universe, faithfulness=value.get("faithfulness"))


@dataclass(frozen=True, kw_only=True)
class EdgeDiscovery(TidyRecords):
    """A discovered edge circuit with its faithfulness curve.

    Attributes:
      ranking: the universe's edges, largest |attribution| first.
      attribution: each ranked edge's pooled EAP score (units of the mean gap).
      sizes: the verified set sizes (top-k of the ranking): the grid and the bisection steps.
      faithfulness: each size's faithfulness (ratio of means over pairs, bootstrap CI).
      threshold: the faithfulness the circuit must reach.
      circuit: the smallest verified set reaching the threshold (None if none does).
      clean_metric, corrupt_metric: each pair's metric in the plain runs (the corrupted run is
        the run with every edge ablated).
    """

    ranking: tuple[Edge, ...]
    attribution: tuple[float, ...]
    sizes: tuple[int, ...]
    faithfulness: tuple[Estimate, ...]
    threshold: float
    circuit: EdgeCircuit | None
    clean_metric: Float[np.ndarray, " pair"] = field(repr=False)
    corrupt_metric: Float[np.ndarray, " pair"] = field(repr=False)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per verified size: size, share of the universe, faithfulness with its CI and
        n, whether it reaches the threshold, and the edges added at that size."""
        ranked = [edge_name(e) for e in self.ranking]
        return curve_records(self.sizes, self.faithfulness, self.threshold, ranked)


@dataclass(frozen=True, kw_only=True)
class EdgeDiscoveryConfig:
    """How `discover_edges` ranks and verifies.

    Attributes:
      threshold: faithfulness the circuit must reach, in (0, 1].
      sizes: set sizes to verify (None: 1, 2, 4, ... and the whole universe).
      ig_steps: None ranks by EAP; k >= 1 by EAP-IG with k steps.
      seed: seeds the bootstrap intervals.
      runs_per_trace: verification runs sharing one trace.
    """

    threshold: float = 0.8
    sizes: tuple[int, ...] | None = None
    ig_steps: int | None = None
    seed: int = 0
    runs_per_trace: int = 16


def discover_edges(
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    config: EdgeDiscoveryConfig | None = None,
    *,
    metric: Metric | None = None,
    pool: GraphPool | None = None,
    execution: ExecutionConfig | None = None,
) -> EdgeDiscovery:
    """Ranks every edge by edge attribution and verifies the top-k sets by exact edge patching.

    Args:
      vlm: the model.
      clean: clean rows (pairs whose clean answer is right).
      corrupt: corrupted rows aligned with `clean` token by token.
      config: threshold, sizes, ranking (EAP or EAP-IG), seed and runs per trace.
      metric: the metric (default the yes-minus-no margin).
      pool: runs the verification traces on replicas of the model (`RayGraphPool`).
      execution: settings of every verification trace (e.g. `memory_budget_mb`, which counts
        the differences a keep-the-circuit patch keeps for each of its senders).

    Raises:
      ConfigError: misaligned rows, fewer than 2 pairs, a bad threshold or size, or pairs whose
        clean and corrupted runs do not differ.
    """
    config = config or EdgeDiscoveryConfig()
    threshold, seed, runs_per_trace = config.threshold, config.seed, config.runs_per_trace
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must lie in (0, 1]; got {threshold}.")
    if clean.batch_size < 2:
        raise ConfigError(f"discovery pools over pairs: pass at least 2; got {clean.batch_size}.")
    metric = metric or vlm.yes_no_margin
    universe = edge_universe(vlm)
    eap = edge_attribution(vlm, clean, corrupt, metric, ig_steps=config.ig_steps)
    scores = attributed(eap, universe)
    order = np.argsort(-np.abs(scores), kind="stable")
    ranking = tuple(universe[i] for i in order)
    chosen = _sizes(len(ranking), config.sizes)

    def run(ks: Sequence[int]) -> dict[str, np.ndarray]:
        variants = {f"k{k}": ("clean", ranking[k:]) for k in ks}
        return _edge_metrics(vlm, clean, corrupt, variants, metric, runs_per_trace=runs_per_trace,
                             pool=pool, config=execution)  # fmt: skip

    metrics = run(chosen)
    clean_m, corrupt_m = metrics["clean"], metrics["corrupt"]
    curve = {k: kept_share(metrics[f"k{k}"], clean_m, corrupt_m, seed) for k in chosen}

    def verify(k: int) -> Estimate:
        return kept_share(run([k])[f"k{k}"], clean_m, corrupt_m, seed)

    k = smallest_reaching(curve, threshold, verify)
    circuit = None
    if k is not None:
        circuit = EdgeCircuit(edges=ranking[:k], universe=universe, faithfulness=curve[k].estimate)
    done = tuple(sorted(curve))
    return EdgeDiscovery(
        ranking=ranking, attribution=tuple(float(scores[i]) for i in order), sizes=done,
        faithfulness=tuple(curve[k] for k in done), threshold=threshold, circuit=circuit,
        clean_metric=clean_m, corrupt_metric=corrupt_m,
    )  # fmt: skip
