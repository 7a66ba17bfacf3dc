"""Paired and two-sample tests: exact McNemar and permutation tests."""

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from vrp.core import ConfigError, DataError

from ._bootstrap import bootstrap_interval
from ._estimate import Estimate, as_vector, check_confidence, check_count, check_same_length

Statistic = Callable[..., np.ndarray]
"""A vectorised two-sample statistic `f(x, y, axis) -> array`, as `scipy.stats` expects."""


def _paired_correct(correct: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(correct)
    try:
        values = sorted(set(np.unique(arr).tolist()), key=str)
    except TypeError:  # mixed types numpy cannot sort
        values = sorted({str(v) for v in arr.ravel().tolist()})
    if arr.ndim != 1 or not set(values) <= {0, 1}:
        raise DataError(
            f"{name} must be a 1-D 0/1 or boolean vector (1 = answered correctly); "
            f"got shape {arr.shape}, dtype {arr.dtype}, values {values[:5]}. Map each item's "
            "correctness to 0/1 first."
        )
    return arr.astype(bool)


def mcnemar_exact(
    correct_before: ArrayLike, correct_after: ArrayLike, *, confidence: float = 0.95
) -> Estimate:
    """Paired accuracy change with the exact McNemar test.

    The estimate is accuracy(after) - accuracy(before) over the same items. The p-value is the
    exact two-sided binomial test on the discordant pairs (`scipy.stats.binomtest`, p = 0.5),
    which stays valid when few answers flip. The interval is the Agresti-Min (2005) adjusted Wald
    interval for a paired difference of proportions (half a count added to each cell).

    Args:
      correct_before: 0/1 correctness per item under the baseline, shape `(n,)`.
      correct_after: 0/1 correctness per item after the intervention, shape `(n,)`.
      confidence: coverage of the interval.

    Returns:
      An `Estimate` of the accuracy difference in [-1, 1] (not in percentage points).

    Raises:
      DataError: an input is not a 1-D 0/1 vector, or it is empty.
      ShapeError: the inputs differ in length.
    """
    before = _paired_correct(correct_before, "correct_before")
    after = _paired_correct(correct_after, "correct_after")
    check_same_length(before.size, after.size, "correct_before and correct_after")
    level = check_confidence(confidence)
    n = before.size
    if n == 0:
        raise DataError(
            "mcnemar_exact needs at least one paired item; got none. Pass the correctness of "
            "the same items before and after."
        )
    gained = int(np.sum(~before & after))  # wrong before, right after
    lost = int(np.sum(before & ~after))
    discordant = gained + lost
    p_value = stats.binomtest(gained, discordant, 0.5).pvalue if discordant else 1.0
    n_adj = n + 2.0
    diff_adj = (gained - lost) / n_adj
    var = ((gained + lost + 1.0) - (gained - lost) ** 2 / n_adj) / n_adj**2
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(var)
    return Estimate(
        estimate=(gained - lost) / n,
        ci_low=float(max(diff_adj - half, -1.0)),
        ci_high=float(min(diff_adj + half, 1.0)),
        p_value=float(p_value),
        n=n,
        method="paired accuracy difference, Agresti-Min CI, exact McNemar p",
        confidence=level,
    )


def _check_statistic(statistic: Statistic) -> None:
    """Raises `ConfigError` unless `statistic` maps two 2-D samples to one value per row."""
    fix = "Pass a vectorised f(x, y, axis) returning one value per slice, e.g. the default."
    if not callable(statistic):
        raise ConfigError(f"statistic must be a callable f(x, y, axis); got {statistic!r}. {fix}")
    probe = np.arange(6.0).reshape(2, 3)
    try:
        out = np.asarray(statistic(probe, probe + 1.0, axis=-1))
    except TypeError as err:  # e.g. a statistic without the `axis` keyword
        raise ConfigError(
            f"statistic failed on a (2, 3) test input with axis=-1 ({type(err).__name__}: {err}). "
            f"{fix}"
        ) from err
    if out.shape != (2,):
        raise ConfigError(
            f"statistic must return one value per slice along `axis`: shape (2,) for a (2, 3) test "
            f"input, got shape {out.shape}. {fix}"
        )


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def permutation_test(
    x: ArrayLike,
    y: ArrayLike,
    *,
    statistic: Statistic = _mean_difference,
    paired: bool = False,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """A two-sample (or paired) permutation test, with a bootstrap CI of the same statistic.

    The p-value is `scipy.stats.permutation_test`'s: labels are exchanged between the samples
    (`paired=False`) or within each pair (`paired=True`); the test is two-sided. The interval is a
    BCa bootstrap of `statistic` (`scipy.stats.bootstrap`), resampling each sample, or the pairs,
    with replacement. Where BCa is undefined (e.g. a count of distinct values, which no resample
    exceeds) the percentile interval of the same resamples is returned, and `method` says so.

    Args:
      x: first sample, e.g. a signal on correctly answered items, shape `(n_x,)`.
      y: second sample, shape `(n_y,)` (`n_y == n_x` when `paired`).
      statistic: vectorised `f(x, y, axis)`; default mean(x) - mean(y).
      paired: whether `x[i]` and `y[i]` are two measurements of one item.
      n_resamples: resamples for both the permutation test and the bootstrap.
      confidence: coverage of the interval.
      seed: seed of the numpy Generator.

    Returns:
      An `Estimate` with `n = n_x + n_y` (or the number of pairs when `paired`).

    Raises:
      ShapeError: inputs are not 1-D, or paired inputs differ in length.
      DataError: inputs hold NaN or infinite values, a sample has fewer than 2 values, or
        `statistic` is NaN or infinite on some bootstrap resample.
      ConfigError: `statistic` is not a vectorised `f(x, y, axis)`, `confidence` is invalid,
        `n_resamples` is not a whole number >= 1 or `seed` one >= 0.
    """
    a, b = as_vector(x, "x"), as_vector(y, "y")
    level = check_confidence(confidence)
    check_count(n_resamples, "n_resamples")
    check_count(seed, "seed", minimum=0)
    _check_statistic(statistic)
    if paired:
        check_same_length(a.size, b.size, "paired x and y")
    if min(a.size, b.size) < 2:
        raise DataError(
            f"each sample needs at least 2 values; got {a.size} and {b.size}. Pass more values."
        )
    rng = np.random.default_rng(seed)
    perm = stats.permutation_test(
        (a, b),
        statistic,
        permutation_type="samples" if paired else "independent",
        vectorized=True,
        n_resamples=n_resamples,
        rng=rng,
    )
    low, high, kind = bootstrap_interval(
        (a, b),
        statistic,
        explain="make `statistic` finite on every resample, or pass samples on which it is.",
        paired=paired,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        rng=rng,
    )
    return Estimate(
        estimate=float(perm.statistic),
        ci_low=low,
        ci_high=high,
        p_value=float(perm.pvalue),
        n=a.size if paired else a.size + b.size,
        method=f"{'paired ' if paired else ''}permutation test p, {kind} CI",
        confidence=level,
    )
