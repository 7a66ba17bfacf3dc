"""Circuit discovery: rank nodes by attribution patching, verify growing sets by exact patching.

1. Attribution: one `attribution_patching` pass scores every node of the universe (a node's
   score sums its positions' estimates, per pair, oriented towards the clean answer and pooled
   over pairs in units of the mean clean-corrupt gap).
2. Ranking by |score|: a node matters whether it pushes towards the clean answer or away.
3. Verification, exact: for growing sizes k, the clean rows run with every node outside the top k
   patched from the corrupted rows ("keep the circuit, ablate the rest"). Faithfulness is the
   share of the clean behaviour kept, pooled over pairs as a ratio of means (bootstrap CI):
   ``sum s (M_k - M_none) / sum |M_clean - M_none|``, with M_none the run with every node
   ablated and s each pair's orientation.
   The ranking and the verification look from opposite ends: attribution estimates patching
   a node's clean value into the corrupted run (denoising), the verification patches corrupted
   values into the clean run around the kept set (noising). A node can matter one way and not
   the other; the faithfulness curve is the measured answer.
4. The circuit: the smallest set whose faithfulness reaches the threshold (80% by default):
   the first size of the grid that reaches it, then bisection down to the size below (one exact
   run per step), taking faithfulness as growing with the set; the whole curve is returned.

Cost: 2 forward + 1 backward passes for the ranking, then one forward per size (several sizes
per trace).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from vrp import Component, ConfigError, Site
from vrp.core import TidyRecords
from vrp.interventions import GraphPool
from vrp.models import VLM, VlmInputs
from vrp.stats import Estimate, ratio_of_means

from ._attribution import Attribution, attribution_patching
from ._nodes import Circuit, Node, shared_layout, universe, variant_metrics
from ._pairs import POSITION_GROUPS, PositionGroup, _positions
from ._sweep import Metric


@dataclass(frozen=True, kw_only=True)
class Discovery(TidyRecords):
    """A discovered circuit with its faithfulness curve.

    Attributes:
      ranking: the universe's nodes, largest |attribution| first.
      attribution: each ranked node's pooled attribution score (units of the mean gap).
      sizes: the verified set sizes (top-k of the ranking): the grid and the bisection steps.
      faithfulness: each size's faithfulness (ratio of means over pairs, bootstrap CI).
      threshold: the faithfulness the circuit must reach.
      circuit: the smallest verified set reaching the threshold (None if none does).
      clean_metric, corrupt_metric, none_metric: the metric per pair of the clean run, the
        corrupted run, and the clean run with every node ablated.
    """

    ranking: tuple[Node, ...]
    attribution: tuple[float, ...]
    sizes: tuple[int, ...]
    faithfulness: tuple[Estimate, ...]
    threshold: float
    circuit: Circuit | None
    clean_metric: Float[np.ndarray, " pair"] = field(repr=False)
    corrupt_metric: Float[np.ndarray, " pair"] = field(repr=False)
    none_metric: Float[np.ndarray, " pair"] = field(repr=False)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per verified size: size, share of the universe, faithfulness with its CI and
        n, whether it reaches the threshold, and the nodes added at that size."""
        ranked = [str(n) for n in self.ranking]
        return curve_records(self.sizes, self.faithfulness, self.threshold, ranked)


def node_attribution(atp: Attribution, nodes: Sequence[Node]) -> np.ndarray:
    """Each node's attribution per pair: its positions' (and head's) estimates summed,
    oriented towards the clean answer, in units of the pairs' mean |clean - corrupt| gap.

    Raises:
      ConfigError: a node's component was not attributed, or the pairs' gaps are all zero.
    """
    clean, corrupt = atp.clean_metric.float().cpu(), atp.corrupt_metric.float().cpu()
    gap = clean - corrupt
    if float(gap.abs().mean()) == 0:
        raise ConfigError("the clean and corrupted runs score the same on every pair.")
    inputs_layout = _layout_of(atp)
    out = np.zeros((len(nodes), len(gap)))
    for i, node in enumerate(nodes):
        scores = atp.score(Site(layer=node.layer, component=node.component)).float().cpu()
        if node.head is not None:
            scores = scores[..., node.head]
        positions = _positions(node.positions, inputs_layout)
        if positions is None:
            continue
        mask = positions.resolve(atp.image_mask.cpu(), atp.attention_mask.cpu())
        out[i] = (torch.sign(gap) * (scores * mask).sum(dim=1)).numpy()
    return out / float(gap.abs().mean())


def _layout_of(atp: Attribution) -> tuple[bool, ...]:
    real = atp.attention_mask[0].bool().cpu()
    return tuple(bool(v) for v in atp.image_mask[0].cpu()[real].tolist())


def _sizes(n: int, sizes: Sequence[int] | None) -> tuple[int, ...]:
    if sizes is None:
        grid = {min(2**i, n) for i in range(n.bit_length() + 1)} | {n}
        return tuple(sorted(grid))
    chosen = tuple(sorted(set(int(s) for s in sizes)))
    if not chosen or chosen[0] < 1 or chosen[-1] > n:
        raise ConfigError(f"sizes must lie in 1..{n} (the universe's nodes); got {list(sizes)}.")
    return chosen


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    """How `discover_circuit` builds and verifies.

    Attributes:
      components: node components (`Component.HEAD_OUT` gives one node per head).
      groups: position groups of the nodes.
      sizes: set sizes to verify (None: 1, 2, 4, ... and the whole universe).
      threshold: faithfulness the circuit must reach, in (0, 1].
      seed: seeds the bootstrap intervals.
    """

    components: tuple[Component, ...] = (Component.ATTN_OUT, Component.MLP_OUT)
    groups: tuple[PositionGroup, ...] = POSITION_GROUPS
    sizes: tuple[int, ...] | None = None
    threshold: float = 0.8
    seed: int = 0


def discover_circuit(
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    config: DiscoveryConfig | None = None,
    *,
    metric: Metric | None = None,
    pool: GraphPool | None = None,
) -> Discovery:
    """Ranks the nodes by attribution patching and verifies the top-k sets by exact patching.

    Args:
      vlm: the model.
      clean: clean rows (pairs whose clean answer is right), one token layout.
      corrupt: corrupted rows aligned with `clean` (whose answers differ from the clean ones).
      config: components, groups, sizes, threshold and seed.
      metric: the metric (default the yes-minus-no margin).
      pool: runs the exact verification traces on replicas of the model (`RayGraphPool`).

    Raises:
      ConfigError: misaligned or mixed-layout rows, fewer than 2 pairs, a bad threshold or size,
        or pairs whose clean and ablated runs do not differ.
    """
    config = config or DiscoveryConfig()
    threshold, seed, components = config.threshold, config.seed, config.components
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must lie in (0, 1]; got {threshold}.")
    if clean.batch_size < 2:
        raise ConfigError(f"discovery pools over pairs: pass at least 2; got {clean.batch_size}.")
    shared_layout(clean)
    metric = metric or vlm.yes_no_margin
    nodes = universe(vlm, components=components, groups=config.groups)
    sites = [Site(layer=layer, component=c)
             for layer in range(vlm.adapter.n_layers) for c in components]  # fmt: skip
    atp = attribution_patching(vlm, clean, corrupt, sites, metric)
    scores = node_attribution(atp, nodes).mean(axis=1)
    order = np.argsort(-np.abs(scores), kind="stable")
    ranking = tuple(nodes[i] for i in order)
    chosen = _sizes(len(ranking), config.sizes)
    variants = {"none": ranking, **{f"k{k}": ranking[k:] for k in chosen}}
    metrics = {k: v.float().cpu().numpy() for k, v in
               variant_metrics(vlm, clean, corrupt, variants, metric, pool=pool).items()}  # fmt: skip
    curve = dict(zip(chosen, faithfulness_curve(metrics, chosen, seed), strict=True))

    def verify(k: int) -> Estimate:  # the top-k set, by exact patching
        kept = variant_metrics(vlm, clean, corrupt, {"kept": ranking[k:]}, metric,
                               pool=pool)["kept"]  # fmt: skip
        return kept_share(kept.float().cpu().numpy(), metrics["clean"], metrics["none"], seed)

    k = smallest_reaching(curve, threshold, verify)
    circuit = None
    if k is not None:
        circuit = Circuit(nodes=ranking[:k], universe=nodes, faithfulness=curve[k].estimate)
    sizes_done = tuple(sorted(curve))
    return Discovery(
        ranking=ranking, attribution=tuple(float(scores[i]) for i in order), sizes=sizes_done,
        faithfulness=tuple(curve[k] for k in sizes_done), threshold=threshold, circuit=circuit,
        clean_metric=metrics["clean"], corrupt_metric=metrics["corrupt"],
        none_metric=metrics["none"],
    )  # fmt: skip


def smallest_reaching(
    curve: dict[int, Estimate], threshold: float, verify: Callable[[int], Estimate]
) -> int | None:
    """The smallest size reaching `threshold`: the first size of the grid `curve` holds that
    reaches it, then bisection down to the grid size below (`verify` measures a size; each
    joins `curve`); None when no size of the grid reaches it."""
    grid = sorted(curve)
    reached = [k for k in grid if curve[k].estimate >= threshold]
    if not reached:
        return None
    below = max((k for k in grid if k < reached[0]), default=0)
    return _bisect(below, reached[0], threshold, curve, verify)


def curve_records(
    sizes: Sequence[int],
    faithfulness: Sequence[Estimate],
    threshold: float,
    ranked: Sequence[str],
) -> list[dict[str, Any]]:
    """One row per verified size: size, share of the universe, faithfulness with its CI and
    n, whether it reaches the threshold, and the (named) units added at that size."""
    rows, previous = [], 0
    for size, est in zip(sizes, faithfulness, strict=True):
        rows.append({"size": size, "share": size / len(ranked), "faithfulness": est.estimate,
                     "ci_low": est.ci_low, "ci_high": est.ci_high, "n": est.n,
                     "reaches": est.estimate >= threshold,
                     "added": " ".join(ranked[previous:size])})  # fmt: skip
        previous = size
    return rows


def _bisect(low: int, high: int, threshold: float, curve: dict[int, Estimate], verify: Any) -> int:
    """The smallest size in (low, high] reaching `threshold`, given that `high` does and `low`
    does not, by bisection (faithfulness taken as growing with the size); every size measured
    on the way joins `curve`."""
    while high - low > 1:
        mid = (low + high) // 2
        curve[mid] = verify(mid)
        low, high = (low, mid) if curve[mid].estimate >= threshold else (mid, high)
    return high


def kept_share(kept: np.ndarray, clean: np.ndarray, none: np.ndarray, seed: int) -> Estimate:
    """Share of the clean behaviour kept: ratio of means of s (kept - none) over |clean - none|,
    over the pairs whose full ablation changes the metric (the others weigh nothing).

    Raises:
      ConfigError: the clean and fully ablated runs do not differ on average.
    """
    gap = clean - none
    moved = gap != 0  # a pair whose ablation changes nothing adds 0 / 0: it carries no weight
    if moved.sum() < 2:
        raise ConfigError(
            f"ablating every node changes the metric on {int(moved.sum())} of {len(gap)} pairs; "
            "a share of the behaviour needs at least 2. Use pairs whose corruption changes the "
            "answer, or a larger universe."
        )
    return ratio_of_means((np.sign(gap) * (kept - none))[moved], np.abs(gap)[moved], seed=seed,
                          n_resamples=1999)  # fmt: skip


def faithfulness_curve(
    metrics: dict[str, np.ndarray], sizes: Sequence[int], seed: int
) -> list[Estimate]:
    """Faithfulness of each size's run (`metrics["k<size>"]`) against "clean" and "none"."""
    return [kept_share(metrics[f"k{k}"], metrics["clean"], metrics["none"], seed) for k in sizes]
