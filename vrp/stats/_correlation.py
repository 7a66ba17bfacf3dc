"""Point-biserial correlation between a continuous signal and a binary correctness label."""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from vrp.core import ConfigError, DataError

from ._bootstrap import bootstrap_interval
from ._estimate import (
    Estimate,
    as_binary,
    as_vector,
    check_confidence,
    check_count,
    check_same_length,
)


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along `axis`, vectorised for `scipy.stats.bootstrap` (NaN where undefined)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    denom = np.sqrt((xc * xc).sum(axis=axis) * (yc * yc).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((xc * yc).sum(axis=axis) / denom)


def fisher_z_interval(r: float, n: int, confidence: float) -> tuple[float, float]:
    """Confidence interval of a correlation from the Fisher z transform, se = 1 / sqrt(n - 3)."""
    z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
    half = stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def point_biserial(
    values: ArrayLike,
    labels: ArrayLike,
    *,
    ci: Literal["fisher", "bootstrap"] = "fisher",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Estimate:
    """Point-biserial correlation R_pb between a signal and binary labels, with a CI.

    The estimate and p-value are `scipy.stats.pointbiserialr`'s. The interval is either the Fisher z
    interval (fast, accurate for bivariate-normal-like data) or a BCa bootstrap over pairs (no
    distributional assumption; costs `n_resamples` correlations).

    The bootstrap never returns a NaN interval. If a resample draws one class only, r is undefined
    in it and so is any interval built from the resamples: this raises a `DataError` (with few
    samples of the rarer class, e.g. 2 of 60, that happens in about 1 resample in 8; use
    ci="fisher" there). If every resample has an r but the BCa interval is undefined (e.g. r = 1
    in every resample), the percentile interval of the same resamples is returned, and `method`
    says so.

    Args:
      values: one signal value per sample, shape `(n,)`.
      labels: 0/1 correctness per sample, shape `(n,)`.
      ci: "fisher" or "bootstrap".
      confidence: coverage of the interval.
      n_resamples: bootstrap resamples (ignored for "fisher").
      seed: seed of the bootstrap's numpy Generator.

    Returns:
      An `Estimate` of r with the chosen CI and the p-value of H0: r = 0.

    Raises:
      ShapeError: inputs are not 1-D or differ in length.
      DataError: labels are not binary with both classes, values are constant or not finite,
        fewer than 4 samples, or (bootstrap) a resample in which r is undefined.
      ConfigError: `ci` or `confidence` is invalid, `n_resamples` is not a whole number >= 1 or
        `seed` one >= 0.
    """
    x = as_vector(values, "values")
    y = as_binary(labels)
    check_same_length(x.size, y.size, "values and labels")
    level = check_confidence(confidence)
    check_count(n_resamples, "n_resamples")
    check_count(seed, "seed", minimum=0)
    if x.size < 4:
        raise DataError(
            f"point_biserial needs at least 4 samples for a CI; got {x.size}. Pass more samples."
        )
    if np.ptp(x) == 0:
        raise DataError(
            f"values are constant ({x[0]:g} for all {x.size} samples), so their correlation with "
            "labels is undefined. Pass a signal that varies across samples."
        )
    res = stats.pointbiserialr(y, x)
    r = float(res.statistic)
    if ci == "fisher":
        low, high = fisher_z_interval(r, x.size, level)
        kind = "Fisher z"
    elif ci == "bootstrap":
        low, high, kind = bootstrap_interval(
            (x, y.astype(np.float64)),
            _pearson,
            explain=_undefined_resamples(y),
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=level,
            batch=min(n_resamples, 1000),
            rng=np.random.default_rng(seed),
        )
    else:
        raise ConfigError(f"ci must be 'fisher' or 'bootstrap'; got {ci!r}.")
    return Estimate(
        estimate=r,
        ci_low=low,
        ci_high=high,
        p_value=float(res.pvalue),
        n=int(x.size),
        method=f"point-biserial r, {kind} CI, t-test p",
        confidence=level,
    )


def _undefined_resamples(y: np.ndarray) -> str:
    """Why a pair resample can have no correlation, and what to do: for the `DataError`."""
    rarer = int(np.bincount(y).min())
    miss = (1.0 - rarer / y.size) ** y.size
    return (
        f"r needs both classes, and the rarer class has {rarer} of {y.size} samples, so a "
        f"resample misses it with probability {miss:.2g}. Use ci='fisher', or collect more "
        "samples of the rarer class."
    )
