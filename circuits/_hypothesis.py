"""Unit-level hypothesis tests: is this set of nodes necessary, and is it sufficient?

Given a stated set of nodes (e.g. "the MLP outputs of the last two layers at the answer
position") and clean/corrupt pairs:

- necessity: the clean rows with the set ablated (patched from the corrupted rows) lose a share
  of the clean-corrupt gap: ``sum s (M_clean - M_ablated) / sum |M_clean - M_corrupt|``;
- sufficiency: the clean rows with every other node of the universe ablated keep a share of the
  behaviour: ``sum s (M_kept - M_none) / sum |M_clean - M_none|`` (as in discovery).

Each share is a ratio of means over pairs with a bootstrap CI, and is compared with random sets
of the same size and the same layer profile (as many nodes per layer, drawn from the universe
outside the set): p = (1 + random sets at least as extreme) / (1 + draws). A claim holds when
the CI's lower end clears the stated minimum and the set beats the random sets at `alpha`.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vrp import ConfigError
from vrp.core import TidyRecords
from vrp.interventions import GraphPool
from vrp.models import VLM, VlmInputs
from vrp.stats import Estimate, ratio_of_means

from ._discovery import kept_share
from ._nodes import Node, universe as all_nodes, variant_metrics
from ._outcomes import seeded_rng
from ._sweep import Metric


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim about the set: its share with CI, the random sets' shares, the verdict.

    Attributes:
      test: "necessity" or "sufficiency".
      share: the set's share (lost when ablated, or kept alone), ratio of means with CI.
      minimum: the stated minimum share.
      random: the random sets' shares (point estimates).
      p_vs_random: (1 + random sets with a share at least the set's) / (1 + draws).
      holds: the CI's lower end reaches `minimum` and `p_vs_random` <= alpha.
    """

    test: str
    share: Estimate
    minimum: float
    random: tuple[float, ...]
    p_vs_random: float
    holds: bool


@dataclass(frozen=True, kw_only=True)
class HypothesisTest(TidyRecords):
    """Necessity and sufficiency of a node set over pairs (see the module doc)."""

    nodes: tuple[Node, ...]
    necessity: Claim
    sufficiency: Claim
    n_pairs: int

    def to_records(self) -> list[dict[str, Any]]:
        """One row per claim per set: test, set ("target" or "random"), draw, share (with CI for
        the target), minimum, p against random sets and the verdict."""
        rows: list[dict[str, Any]] = []
        for claim in (self.necessity, self.sufficiency):
            rows.append({"test": claim.test, "set": "target", "draw": 0,
                         "share": claim.share.estimate, "ci_low": claim.share.ci_low,
                         "ci_high": claim.share.ci_high, "n": claim.share.n,
                         "minimum": claim.minimum, "p_vs_random": claim.p_vs_random,
                         "holds": claim.holds})  # fmt: skip
            rows += [{"test": claim.test, "set": "random", "draw": d, "share": v,
                      "ci_low": None, "ci_high": None, "n": claim.share.n,
                      "minimum": claim.minimum, "p_vs_random": None, "holds": None}
                     for d, v in enumerate(claim.random)]  # fmt: skip
        return rows


def random_like(
    nodes: Sequence[Node], pool: Sequence[Node], n_draws: int, seed: int
) -> list[tuple[Node, ...]]:
    """`n_draws` random sets with as many nodes per layer as `nodes`, drawn from `pool` without
    the nodes themselves.

    Raises:
      ConfigError: a layer of `pool` has too few other nodes to draw from.
    """
    wanted = Counter(n.layer for n in nodes)
    chosen = set(nodes)
    by_layer = {layer: [n for n in pool if n.layer == layer and n not in chosen]
                for layer in wanted}  # fmt: skip
    short = {
        layer: len(by_layer[layer]) for layer in wanted if len(by_layer[layer]) < wanted[layer]
    }
    if short:
        raise ConfigError(
            f"random sets need as many other nodes per layer as the set has; layers {short} "
            "have fewer. Use a larger universe (more components or groups) or a smaller set."
        )
    rng = seeded_rng(seed, "circuits/random_like")
    draws = []
    for _ in range(n_draws):
        picked: list[Node] = []
        for layer in sorted(wanted):
            options = by_layer[layer]
            picked += [options[i] for i in rng.choice(len(options), wanted[layer], replace=False)]
        draws.append(tuple(picked))
    return draws


def _lost_share(ablated: np.ndarray, clean: np.ndarray, corrupt: np.ndarray, seed: int) -> Estimate:
    gap = clean - corrupt
    moved = gap != 0  # pairs whose corruption changes nothing weigh nothing (0 / 0)
    if moved.sum() < 2:
        raise ConfigError(
            f"the corruption changes the metric on {int(moved.sum())} of {len(gap)} pairs; "
            "necessity needs at least 2. Use pairs whose corrupted answer differs."
        )
    return ratio_of_means((np.sign(gap) * (clean - ablated))[moved], np.abs(gap)[moved],
                          seed=seed, n_resamples=1999)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class HypothesisConfig:
    """The claims' minimums and the comparison with random sets.

    Attributes:
      necessity: minimum share of the clean-corrupt gap lost when the set is ablated.
      sufficiency: minimum share of the behaviour the set keeps alone.
      n_random: random comparison sets (same size and layer profile).
      alpha: level of the comparison with random sets.
      seed: seeds the random sets and the bootstrap.
    """

    necessity: float = 0.5
    sufficiency: float = 0.8
    n_random: int = 20
    alpha: float = 0.05
    seed: int = 0


def check_hypothesis(  # noqa: PLR0913  (the data, the claim, and keyword-only knobs)
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    nodes: Sequence[Node],
    config: HypothesisConfig | None = None,
    *,
    pool: Sequence[Node] | None = None,
    metric: Metric | None = None,
    replicas: GraphPool | None = None,
) -> HypothesisTest:
    """Tests whether `nodes` are necessary (ablating them loses at least `config.necessity` of
    the clean-corrupt gap) and sufficient (alone they keep at least `config.sufficiency` of the
    behaviour), each against random sets of the same size and layer profile.

    Args:
      vlm: the model.
      clean: clean rows, one token layout.
      corrupt: corrupted rows aligned with `clean`.
      nodes: the hypothesised set.
      config: minimums, random sets, alpha, seed.
      pool: the universe (default: every attention and MLP output node at every group).
      metric: the metric (default the yes-minus-no margin).
      replicas: runs the traces on replicas of the model (`RayGraphPool`).

    Raises:
      ConfigError: an empty set, nodes outside the pool, too few pairs or random sets, or a
        layer without enough other nodes for random sets.
    """
    config = config or HypothesisConfig()
    n_random, seed, alpha = config.n_random, config.seed, config.alpha
    pool = tuple(pool) if pool is not None else all_nodes(vlm)
    target = tuple(nodes)
    if not target or any(n not in pool for n in target) or clean.batch_size < 2 or n_random < 1:
        raise ConfigError(
            f"test_hypothesis needs a non-empty set of nodes from the pool, at least 2 pairs and "
            f"n_random >= 1; got {len(target)} nodes ({sum(n not in pool for n in target)} "
            f"outside the pool), {clean.batch_size} pairs, n_random={n_random}."
        )
    randoms = random_like(target, pool, n_random, seed)
    sets = {"target": target, **{f"r{d}": r for d, r in enumerate(randoms)}}
    variants: dict[str, Sequence[Node]] = {"none": pool}
    for name, chosen in sets.items():
        variants[f"ablate_{name}"] = chosen
        variants[f"keep_{name}"] = [n for n in pool if n not in set(chosen)]
    m = {k: v.float().cpu().numpy() for k, v in
         variant_metrics(vlm, clean, corrupt, variants, metric or vlm.yes_no_margin,
                         pool=replicas).items()}  # fmt: skip

    def claim(test: str, share: Any, minimum: float) -> Claim:
        mine = share("target")
        others = tuple(share(f"r{d}").estimate for d in range(n_random))
        p = (1 + sum(o >= mine.estimate for o in others)) / (1 + n_random)
        return Claim(test=test, share=mine, minimum=minimum, random=others, p_vs_random=p,
                     holds=bool(mine.ci_low >= minimum and p <= alpha))  # fmt: skip

    return HypothesisTest(
        nodes=target,
        necessity=claim("necessity",
                        lambda s: _lost_share(m[f"ablate_{s}"], m["clean"], m["corrupt"], seed),
                        config.necessity),
        sufficiency=claim("sufficiency",
                          lambda s: kept_share(m[f"keep_{s}"], m["clean"], m["none"], seed),
                          config.sufficiency),
        n_pairs=clean.batch_size,
    )  # fmt: skip
