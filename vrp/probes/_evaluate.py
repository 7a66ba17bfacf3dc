"""Held-out scoring of any probe: stratified k-fold AUROC with a CI and a shuffled-label control."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from vrp.core import ConfigError, DataError
from vrp.stats import Estimate, auroc
from vrp.stats._estimate import as_binary


@dataclass(frozen=True, kw_only=True)
class ProbeScore:
    """Held-out AUROC of one probe, with its shuffled-label control.

    Attributes:
      auroc: AUROC of out-of-fold scores pooled over folds, DeLong CI.
      control: the same with labels shuffled before fitting (should sit near 0.5).
      fold_auroc: AUROC within each held-out fold.
      n: samples.
      n_splits: folds.
    """

    auroc: Estimate
    control: Estimate
    fold_auroc: tuple[float, ...]
    n: int
    n_splits: int


def stratified_folds(y: np.ndarray, n_splits: int, seed: int) -> list[np.ndarray]:
    """Test-row indices of each fold of a shuffled stratified k-fold split.

    Raises:
      ConfigError: `n_splits < 2`.
      DataError: a class has fewer than `n_splits` samples.
    """
    if n_splits < 2:
        raise ConfigError(f"n_splits must be at least 2 for held-out scores; got {n_splits}.")
    rarest = int(np.bincount(y).min())
    if rarest < n_splits:
        raise DataError(
            f"the rarer class has {rarest} samples, fewer than n_splits={n_splits}; "
            "lower n_splits or add samples."
        )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [test for _, test in cv.split(np.zeros((y.size, 1)), y)]


def _out_of_fold(probe: BaseEstimator, x: ArrayLike, y: np.ndarray, folds: list) -> np.ndarray:
    splits = [(np.setdiff1d(np.arange(y.size), test), test) for test in folds]
    method = "decision_function" if hasattr(probe, "decision_function") else "predict_proba"
    scores = cross_val_predict(clone(probe), x, y, cv=splits, method=method)
    return np.asarray(scores if scores.ndim == 1 else scores[:, 1])


def evaluate_probe(
    probe: BaseEstimator,
    x: ArrayLike,
    labels: ArrayLike,
    *,
    n_splits: int = 5,
    confidence: float = 0.95,
    seed: int = 0,
) -> ProbeScore:
    """Scores a probe on held-out folds only, next to a shuffled-label control.

    Args:
      probe: any scikit-learn classifier or pipeline (cloned; never fit on its test fold).
      x: the probe's input, e.g. `(n, d)` or `(n, layer, d)` for a `LayerConcat` pipeline.
      labels: 0/1 correctness, shape `(n,)`.
      n_splits: folds of the shuffled stratified k-fold split.
      confidence: coverage of the AUROC intervals.
      seed: seed of the folds and of the label shuffle.

    Returns:
      A `ProbeScore`.

    Raises:
      DataError: labels are not binary, or a class has fewer than `n_splits` samples.
      ConfigError: `n_splits < 2`.
    """
    y = as_binary(labels)
    folds = stratified_folds(y, n_splits, seed)
    shuffled = np.random.default_rng(seed).permutation(y)
    scores = _out_of_fold(probe, x, y, folds)
    control = _out_of_fold(probe, x, shuffled, folds)
    return ProbeScore(
        auroc=auroc(scores, y, confidence=confidence),
        control=auroc(control, shuffled, confidence=confidence),
        fold_auroc=tuple(float(roc_auc_score(y[t], scores[t])) for t in folds),
        n=int(y.size),
        n_splits=n_splits,
    )
