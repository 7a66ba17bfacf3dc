"""The one result shape every statistic returns, and the input checks they share.

A number without its uncertainty and its sample size invites the mistakes the source study made
(a "-8.3 pp" resting on one flipped answer out of 12). So every statistic in `vrp.stats` returns an
`Estimate`: the point estimate, a confidence interval, a p-value and n, plus the name of the method
that produced them, and nothing else to unpack.
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vrp.core import ConfigError, DataError, ShapeError


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A point estimate with its confidence interval, p-value and sample size.

    Attributes:
      estimate: the statistic on the observed data (r, AUROC, accuracy difference, ...).
      ci_low: lower end of the confidence interval.
      ci_high: upper end of the confidence interval.
      p_value: two-sided p-value of the method's null hypothesis (see `method`); NaN if none.
      n: number of samples (or pairs) the estimate rests on.
      method: how estimate, interval and p-value were computed, e.g. "AUROC, DeLong CI,
        Mann-Whitney p".
      confidence: coverage of the interval (0.95 for a 95% CI).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    method: str
    confidence: float = 0.95

    def __str__(self) -> str:
        level = f"{100 * self.confidence:g}%"
        p = "n/a" if math.isnan(self.p_value) else f"{self.p_value:.3g}"
        return (
            f"{self.estimate:.3f} [{level} CI {self.ci_low:.3f}, {self.ci_high:.3f}], "
            f"p = {p}, n = {self.n:,} ({self.method})"
        )


def check_confidence(confidence: float) -> float:
    """Returns `confidence` if it lies strictly between 0 and 1, else raises `ConfigError`."""
    if not _is_real(confidence) or not 0.0 < confidence < 1.0:
        raise ConfigError(
            f"confidence must lie strictly between 0 and 1 (0.95 for a 95% CI); got {confidence!r}."
        )
    return float(confidence)


def _is_real(value: object) -> bool:
    """A real number (Python or numpy), not a bool or a string."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_count(value: object, name: str, *, minimum: int = 1) -> int:
    """Returns `value` as an int if it is a whole number >= `minimum`, else raises `ConfigError`.

    For settings such as `n_resamples`, `n_splits` or a seed, which scipy and scikit-learn would
    otherwise reject with their own errors (or, for a float, silently truncate).
    """
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    raise ConfigError(
        f"{name} must be a whole number >= {minimum}; got {value!r}. "
        f"Pass e.g. {name}={max(minimum, 2)}."
    )


def check_positive(value: object, name: str) -> float:
    """Returns `value` as a float if it is a finite number > 0, else raises `ConfigError`."""
    if (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        return float(value)
    raise ConfigError(f"need {name} > 0, a finite number; got {value!r}. Pass e.g. {name}=1.0.")


def as_vector(values: ArrayLike, name: str) -> np.ndarray:
    """Converts `values` to a finite 1-D float64 array, or raises a `ShapeError`/`DataError`."""
    arr = _as_float_array(values, name)
    if arr.ndim != 1:
        raise ShapeError(
            f"{name} must be 1-D with one value per sample; got shape {arr.shape}. "
            "Flatten it or pass one column."
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(f"{name} holds {bad} NaN or infinite values; drop or impute those samples.")
    return arr


def _as_float_array(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a float64 array, or a `DataError` naming what is not a number."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{name} must be numbers, one per sample; got {type(values).__name__} that numpy cannot "
            f"read as floats ({err}). Pass a list or array of numbers."
        ) from None


def as_binary(labels: ArrayLike, name: str = "labels") -> np.ndarray:
    """Converts 0/1 or boolean `labels` to an int64 vector holding both classes.

    Raises:
      ShapeError: `labels` is not 1-D.
      DataError: a label is not 0/1, or only one class is present.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D with one 0/1 label per sample; got {arr.shape}.")
    if arr.size == 0:
        raise DataError(
            f"{name} is empty; need at least one sample of each class (0 and 1). Pass one "
            "label per sample."
        )
    try:
        values = set(np.unique(arr).tolist())
    except TypeError:  # mixed types numpy cannot sort, e.g. [0, "1"]
        values = {str(v) for v in arr.tolist()}
    if not values <= {0, 1}:
        shown = sorted(values, key=str)[:5]
        raise DataError(
            f"{name} must be binary (0/1 or False/True, 1 = correct); got values {shown}. "
            "Map your labels to 0/1 first."
        )
    if len(values) < 2:
        raise DataError(
            f"{name} holds only the class {values.pop()} across {arr.size} samples; "
            "both classes are needed. Add samples of the other class."
        )
    return arr.astype(np.int64)


def check_same_length(n_a: int, n_b: int, names: str) -> None:
    """Raises `ShapeError` unless two per-sample inputs have the same length."""
    if n_a != n_b:
        raise ShapeError(
            f"{names} must have one entry per sample each; got lengths {n_a} and {n_b}. "
            "Pass inputs of equal length, row i of each describing sample i."
        )
