"""AUROC with a DeLong or stratified-bootstrap confidence interval, safe at the boundaries.

The point estimate is `sklearn.metrics.roc_auc_score`. The p-value tests H0: AUROC = 0.5 with the
Mann-Whitney U test (`scipy.stats.mannwhitneyu`), whose U statistic is AUROC * n_pos * n_neg, so it
is the same whichever interval is chosen. DeLong's variance uses the midrank formulation of Sun & Xu
(2014), O(n log n); its interval is built on the logit scale. The bootstrap resamples positives and
negatives separately (class counts fixed, as pROC does), through `scipy.stats.bootstrap` with BCa
intervals (percentile when BCa is undefined, see `_bootstrap`).

Both collapse where small benchmark splits land. DeLong's variance is 0 at AUROC 0 or 1 and when
every score ties, and undefined with a single positive or negative; every bootstrap resample of
perfectly separated classes has AUROC 1. A zero-width interval there claims certainty that eight
samples cannot give. In those cases the interval is Newcombe's (2006, Part 2, "method 5") score
interval for the Mann-Whitney AUC: the set of theta with |AUROC - theta| <= z * sqrt(V(theta)),
where V is Hanley & McNeil's (1982) variance under their exponential model with both group sizes
replaced by their mean N = (n_pos + n_neg) / 2. Like the Wilson interval for a proportion it
evaluates the variance at the candidate theta rather than at the estimate, so it keeps its width at
AUROC 0 or 1 (eight perfectly separated samples: [0.58, 1]), stays inside [0, 1], and is symmetric
under AUROC -> 1 - AUROC; Newcombe found it the best-covering of the closed-form intervals at small
n. `Estimate.method` names the interval actually used.
"""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats
from sklearn.metrics import roc_auc_score

from vrp.core import ConfigError

from ._bootstrap import bootstrap_interval
from ._estimate import (
    Estimate,
    as_binary,
    as_vector,
    check_confidence,
    check_count,
    check_same_length,
)

Interval = tuple[float, float, str]
"""`(low, high, name of the interval used)`."""


def _auc_from_ranks(pos: np.ndarray, neg: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC of positives over negatives along `axis`, vectorised (ties count one half)."""
    pos, neg = np.moveaxis(pos, axis, -1), np.moveaxis(neg, axis, -1)
    lead = np.broadcast_shapes(pos.shape[:-1], neg.shape[:-1])
    m, k = pos.shape[-1], neg.shape[-1]
    both = np.concatenate(
        [np.broadcast_to(pos, (*lead, m)), np.broadcast_to(neg, (*lead, k))], axis=-1
    )
    ranks = stats.rankdata(both, axis=-1)
    return np.asarray((ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2) / (m * k))


def delong_variance(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUROC and its DeLong variance from positive and negative scores.

    Args:
      pos: scores of the positive class, shape `(m,)`.
      neg: scores of the negative class, shape `(k,)`.

    Returns:
      `(auroc, variance)`.
    """
    m, k = pos.size, neg.size
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - stats.rankdata(pos)) / k  # share of negatives below each positive
    v01 = 1.0 - (all_ranks[m:] - stats.rankdata(neg)) / m  # share of positives above each negative
    auc = float(v10.mean())
    var = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / k) if min(m, k) > 1 else np.nan
    return auc, var


def _delong_interval(auc: float, var: float, level: float) -> tuple[float, float]:
    """DeLong interval built on the logit scale, which keeps it inside (0, 1) and covers better
    than the plain Wald interval near 0 or 1 and for small n (about 0.92 vs 0.95 at n = 100 in our
    simulations). Needs 0 < auc < 1 and var > 0."""
    centre = np.log(auc / (1.0 - auc))
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(var) / (auc * (1.0 - auc))
    return float(1 / (1 + np.exp(half - centre))), float(1 / (1 + np.exp(-half - centre)))


def newcombe_variance(theta: float, m: int, k: int) -> float:
    """Hanley-McNeil variance of the AUROC at `theta`, both group sizes replaced by their mean.

    ``theta (1 - theta) / (m k) * [1 + (N - 1) ((1 - theta) / (2 - theta) + theta / (1 + theta))]``
    with ``N = (m + k) / 2``, written in Newcombe's (2006) closed form.
    """
    n_mean = (m + k) / 2
    shape = (2 * n_mean - 1) - 3 * (n_mean - 1) / ((2 - theta) * (1 + theta))
    return theta * (1 - theta) / (m * k) * shape


def _newcombe_lower(auc: float, m: int, k: int, z: float) -> float:
    """Lower end of Newcombe's score interval: the root of (auc - t)^2 = z^2 V(t) below `auc`."""
    if auc <= 0.0:
        return 0.0

    def excess(theta: float) -> float:
        return (auc - theta) ** 2 - z * z * newcombe_variance(theta, m, k)

    inner, gap = auc, 0.5
    for _ in range(64):  # at auc == 1 the root at 1 itself is not the one wanted: step inside
        if excess(inner) < 0.0:
            break
        inner, gap = auc - gap, gap / 2
    return float(optimize.brentq(excess, 0.0, inner, xtol=1e-12))


def newcombe_interval(auc: float, m: int, k: int, level: float) -> tuple[float, float]:
    """Newcombe's (2006) score interval of an AUROC from `m` positives and `k` negatives.

    Never of zero width, and inside [0, 1]; the upper end mirrors the lower one, since
    `newcombe_variance` is symmetric in theta <-> 1 - theta.
    """
    z = float(stats.norm.ppf(0.5 + level / 2))
    return _newcombe_lower(auc, m, k, z), 1.0 - _newcombe_lower(1.0 - auc, m, k, z)


def _interval(
    pos: np.ndarray, neg: np.ndarray, ci: str, level: float, n_resamples: int, seed: int
) -> Interval:
    """The requested interval, or Newcombe's where the requested one has collapsed."""
    m, k = pos.size, neg.size
    if ci == "delong":
        auc, var = delong_variance(pos, neg)
        if 0.0 < auc < 1.0 and var > 0.0:  # var is NaN with a single positive or negative
            return (*_delong_interval(auc, var, level), "DeLong")
        return (*newcombe_interval(auc, m, k, level), "Newcombe score (DeLong degenerate)")
    if ci == "bootstrap":
        low, high, kind = bootstrap_interval(
            (pos, neg),
            _auc_from_ranks,
            explain="each resample keeps both classes, so this cannot happen; please report it.",
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=level,
            batch=min(n_resamples, 500),
            rng=np.random.default_rng(seed),
        )
        if high > low:
            return low, high, kind
        auc = float(_auc_from_ranks(pos, neg))  # every resample gave this AUROC: no spread
        return (*newcombe_interval(auc, m, k, level), "Newcombe score (bootstrap degenerate)")
    raise ConfigError(f"ci must be 'delong' or 'bootstrap'; got {ci!r}.")


def auroc(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    ci: Literal["delong", "bootstrap"] = "delong",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Area under the ROC curve of `scores` for `labels`, with a confidence interval.

    Args:
      scores: one score per sample, higher meaning "more likely 1", shape `(n,)`.
      labels: 0/1 labels, shape `(n,)`.
      ci: "delong" (analytic, fast) or "bootstrap" (stratified BCa bootstrap).
      confidence: coverage of the interval.
      n_resamples: bootstrap resamples (ignored for "delong").
      seed: seed of the bootstrap's numpy Generator.

    Where the chosen interval collapses, another takes its place, never a zero-width one:

    - "delong" at AUROC 0 or 1, with all scores tied, or with a single positive or negative
      (variance 0 or undefined): Newcombe's score interval (see the module docstring);
    - "bootstrap" whose BCa interval is NaN: the percentile interval of the same resamples;
      if every resample has the same AUROC (perfect separation, all scores tied), the
      resamples carry no spread at all, and Newcombe's score interval is used.

    Returns:
      An `Estimate` of the AUROC, its interval clipped to [0, 1], and the Mann-Whitney p-value of
      H0: AUROC = 0.5. `method` names the interval used.

    Raises:
      ShapeError: inputs are not 1-D or differ in length.
      DataError: labels are not binary with both classes, or scores are not finite.
      ConfigError: `ci` or `confidence` is invalid, `n_resamples` is not a whole number >= 1 or
        `seed` one >= 0.
    """
    s = as_vector(scores, "scores")
    y = as_binary(labels)
    check_same_length(s.size, y.size, "scores and labels")
    level = check_confidence(confidence)
    check_count(n_resamples, "n_resamples")
    check_count(seed, "seed", minimum=0)
    pos, neg = s[y == 1], s[y == 0]
    estimate = float(roc_auc_score(y, s))
    low, high, kind = _interval(pos, neg, ci, level, n_resamples, seed)
    p_value = float(stats.mannwhitneyu(pos, neg, alternative="two-sided").pvalue)
    return Estimate(
        estimate=estimate,
        ci_low=float(np.clip(low, 0.0, 1.0)),
        ci_high=float(np.clip(high, 0.0, 1.0)),
        p_value=p_value,
        n=int(s.size),
        method=f"AUROC, {kind} CI, Mann-Whitney p",
        confidence=level,
    )
