"""Means with bootstrap intervals over the right unit of resampling.

Two cases the other statistics do not cover:

- `mean_estimate`: the mean of per-unit values, resampled by unit. A study that repeats a random
  condition (several random draws per question) must average the draws within each question
  first and resample questions, not pool draws x questions as if they were independent trials:
  the pooled binomial interval is narrower than the data support (pseudo-replication).
- `ratio_of_means`: ``sum(x) / sum(y)`` over units, e.g. the share of the clean-corrupt margin
  gap that a patch restores, pooled over prompt pairs. The mean of per-pair ratios is dominated
  by pairs whose gap is close to zero (a near tie divides by almost nothing); the ratio of means
  weights each pair by its gap and stays bounded. Units are resampled as (x, y) pairs.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from vrp.core import DataError

from ._bootstrap import bootstrap_interval
from ._estimate import (
    Estimate,
    as_vector,
    check_confidence,
    check_count,
    check_same_length,
)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis))


def _ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis) / np.mean(y, axis=axis))


def _check(n: int, name: str) -> None:
    if n < 2:
        raise DataError(f"{name} needs at least 2 units; got {n}. Pass more units.")


def mean_estimate(
    values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> Estimate:
    """The mean of one value per unit with a bootstrap interval over the units.

    Average repeated measurements of a unit (random draws of a condition for one question)
    before calling this, so that n is the number of independent units.

    Args:
      values: one value per unit, shape `(n,)`.
      confidence: coverage of the interval.
      n_resamples: bootstrap resamples.
      seed: seed of the numpy Generator.

    Returns:
      An `Estimate` with the mean, its BCa bootstrap interval (percentile where BCa is
      undefined, e.g. all values equal), `p_value` NaN and `n` the number of units.

    Raises:
      ShapeError: `values` is not 1-D.
      DataError: NaN or infinite values, or fewer than 2 units.
      ConfigError: bad `confidence`, `n_resamples` or `seed`.
    """
    x = as_vector(values, "values")
    level = check_confidence(confidence)
    check_count(n_resamples, "n_resamples")
    check_count(seed, "seed", minimum=0)
    _check(x.size, "mean_estimate")
    low, high, kind = bootstrap_interval(
        (x,), _mean, explain="the mean of finite values is always defined.",
        vectorized=True, n_resamples=n_resamples, confidence_level=level,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return Estimate(estimate=float(x.mean()), ci_low=low, ci_high=high, p_value=float("nan"),
                    n=int(x.size), method=f"mean over units, {kind} CI", confidence=level)  # fmt: skip


def ratio_of_means(
    numerator: ArrayLike,
    denominator: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Estimate:
    """``mean(numerator) / mean(denominator)`` over paired units, with a bootstrap interval that
    resamples the units, and the sign-flip permutation p-value of ``mean(numerator) = 0``.

    Args:
      numerator: one value per unit, e.g. the margin a patch restores in each prompt pair.
      denominator: the same units' scale, e.g. each pair's clean-corrupt gap; its mean must be
        positive (orient the units first).
      confidence: coverage of the interval.
      n_resamples: resamples of the bootstrap and of the permutation test.
      seed: seed of the numpy Generator.

    Returns:
      An `Estimate` with the ratio, its BCa bootstrap interval, the two-sided p-value of a
      paired permutation test of the numerator against 0 (the ratio is 0 exactly when the
      numerator's mean is), and `n` the number of units.

    Raises:
      ShapeError: inputs not 1-D or of different lengths.
      DataError: NaN or infinite values, fewer than 2 units, a denominator whose mean is not
        positive, or one that is 0 in a bootstrap resample.
      ConfigError: bad `confidence`, `n_resamples` or `seed`.
    """
    x, y = as_vector(numerator, "numerator"), as_vector(denominator, "denominator")
    check_same_length(x.size, y.size, "numerator and denominator")
    level = check_confidence(confidence)
    check_count(n_resamples, "n_resamples")
    check_count(seed, "seed", minimum=0)
    _check(x.size, "ratio_of_means")
    if not y.mean() > 0:
        raise DataError(
            f"ratio_of_means needs a denominator with a positive mean; got mean {y.mean():g}. "
            "Orient the units so that each one's scale is positive (e.g. |gap|)."
        )
    rng = np.random.default_rng(seed)
    perm = stats.permutation_test(
        (x, np.zeros_like(x)), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        permutation_type="samples", vectorized=True, n_resamples=n_resamples, rng=rng,
    )  # fmt: skip
    low, high, kind = bootstrap_interval(
        (x, y), _ratio, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=level, rng=rng,
        explain="a resample's denominator mean is 0; use units whose denominators are all "
        "positive.",
    )  # fmt: skip
    return Estimate(estimate=float(x.mean() / y.mean()), ci_low=low, ci_high=high,
                    p_value=float(perm.pvalue), n=int(x.size),
                    method=f"ratio of means, paired sign-flip permutation p, {kind} CI",
                    confidence=level)  # fmt: skip
