"""Metric fusion: one held-out reliability score from several z-scored signals.

Each signal (self-consistency, answer probability, entropy, a probe score, ...) is z-scored on the
training split only and a logistic regression is fit on top, inside stratified k-fold CV, so the
fused AUROC is scored on held-out samples. Each single signal goes through the same pipeline, which
gives an honest baseline: a signal whose sign is learned on the training split.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from vrp.core import DataError, ShapeError

from ._auroc import auroc
from ._estimate import (
    Estimate,
    as_binary,
    check_confidence,
    check_count,
    check_positive,
    check_same_length,
)
from ._folds import stratified_folds


@dataclass(frozen=True, kw_only=True)
class FusionResult:
    """Held-out AUROC of the fused signals and of each signal alone.

    Attributes:
      auroc: held-out AUROC of the fused score (out-of-fold predictions pooled over folds).
      single: held-out AUROC of each signal alone through the same pipeline, in `names` order.
      names: signal names.
      coefficients: logistic weights per z-scored signal, fit on all samples (for reading only:
        the AUROCs above never see these).
      n_splits: folds of the stratified cross-validation.
    """

    auroc: Estimate
    single: tuple[Estimate, ...]
    names: tuple[str, ...]
    coefficients: tuple[float, ...]
    n_splits: int


def _fusion_model(C: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))


def _check_signals(signals: ArrayLike, names: Sequence[str] | None) -> tuple[np.ndarray, tuple]:
    try:
        x = np.asarray(signals, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"signals must be numbers, shape (n samples, k signals); numpy cannot read them as "
            f"floats ({err}). Pass a numeric 2-D array."
        ) from None
    if x.ndim != 2:
        raise ShapeError(
            f"signals must be 2-D (n samples, k signals); got shape {x.shape}. "
            "Stack 1-D signals with np.column_stack."
        )
    if x.shape[1] == 0:
        raise ShapeError(
            f"signals has shape {x.shape}: no signal columns to fuse. Pass at least one column."
        )
    if not np.all(np.isfinite(x)):
        raise DataError("signals hold NaN or infinite values; drop or impute those samples.")
    labels = tuple(names) if names is not None else tuple(f"signal_{i}" for i in range(x.shape[1]))
    if len(labels) != x.shape[1]:
        raise ShapeError(f"got {len(labels)} names for {x.shape[1]} signals; pass one per column.")
    return x, labels


def fuse_signals(
    signals: ArrayLike,
    labels: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    n_splits: int = 5,
    C: float = 1.0,
    confidence: float = 0.95,
    seed: int = 0,
) -> FusionResult:
    """Fuses z-scored signals with a logistic regression and scores it on held-out folds.

    Args:
      signals: one column per signal, shape `(n, k)`.
      labels: 0/1 correctness per sample, shape `(n,)`.
      names: one name per signal; default "signal_0", "signal_1", ...
      n_splits: folds of the stratified k-fold CV (shuffled with `seed`).
      C: inverse L2 strength of the logistic regression, as in scikit-learn.
      confidence: coverage of the AUROC intervals (DeLong).
      seed: seed of the fold assignment.

    Returns:
      A `FusionResult`.

    Raises:
      ShapeError: `signals` is not 2-D, or names or labels do not match it.
      DataError: non-finite signals, non-binary labels, or a class with fewer than `n_splits`
        samples.
      ConfigError: `n_splits` is not a whole number >= 2, `C` is not a finite number > 0,
        `confidence` is not in (0, 1), or `seed` is not a whole number >= 0.
    """
    x, signal_names = _check_signals(signals, names)
    y = as_binary(labels)
    check_same_length(x.shape[0], y.size, "signals and labels")
    check_confidence(confidence)
    C = check_positive(C, "C")
    cv = stratified_folds(y, n_splits, check_count(seed, "seed", minimum=0))

    def held_out(columns: np.ndarray) -> Estimate:
        oof = cross_val_predict(_fusion_model(C), columns, y, cv=cv, method="decision_function")
        return auroc(oof, y, confidence=confidence)

    fitted = _fusion_model(C).fit(x, y)
    return FusionResult(
        auroc=held_out(x),
        single=tuple(held_out(x[:, [j]]) for j in range(x.shape[1])),
        names=signal_names,
        coefficients=tuple(float(c) for c in fitted[-1].coef_[0]),
        n_splits=n_splits,
    )
