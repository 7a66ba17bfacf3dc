"""Linear probes as scikit-learn estimators: dense L2 (`LogisticProbe`) and sparse L1.

`LogisticProbe` solves exactly scikit-learn's `LogisticRegression(C=C)` objective (L2, unpenalised
intercept) with the batched torch solver that also drives `probe_sweep`, so a probe fit alone and a
probe fit inside a sweep agree. `SparseLogisticProbe` standardises features and picks C for an L1
penalty by inner stratified CV (`LogisticRegressionCV`, liblinear), reporting the fraction of
non-zero weights.
"""

import warnings
from typing import no_type_check

import numpy as np
import torch
from jaxtyping import Float
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from vrp.core import ConfigError, DataError, ShapeError

from ._base import (
    BinaryProbeMixin,
    MatrixLike,
    binary_classes,
    check_counts,
    check_fitted,
    check_hyperparameters,
    checked_data,
)
from ._solver import fit_logistic

_POLISH_STEPS = 2
"""Newton steps after L-BFGS: fits reach the optimum to float64 rounding, so a weighted fit and
a fit on repeated rows agree as scikit-learn's sample-weight check demands, on every CPU (one step
from `tol` usually suffices; the second costs little and covers a slow first). See `_solver`."""


def _sample_weight(sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    try:
        sw = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"sample_weight must be numbers, one per sample; numpy cannot read "
            f"{type(sample_weight).__name__} as floats ({err})."
        ) from None
    if sw.shape != (n,):
        raise ShapeError(f"sample_weight must have shape ({n},), one per sample; got {sw.shape}.")
    if not np.all(np.isfinite(sw)) or (sw < 0).any() or sw.sum() <= 0:
        bad = sw[~np.isfinite(sw) | (sw < 0)]
        found = f"e.g. {bad[0]}" if bad.size else "all zero"
        raise DataError(
            f"sample_weight must be finite, non-negative and not all zero; got {found}. Drop "
            "those samples or give them weight 0."
        )
    return sw


class LogisticProbe(BinaryProbeMixin, BaseEstimator):
    """L2-regularised logistic regression probe, equivalent to `LogisticRegression(C=C)`.

    Args:
      C: inverse L2 strength, as in scikit-learn (the objective is normalised the same way).
      tol: stop when max |gradient| of the normalised objective is at most `tol`.
      max_iter: L-BFGS iteration limit; reaching it warns with `ConvergenceWarning`.

    Attributes:
      classes_: the two labels seen in `fit`; `classes_[1]` is the positive class.
      coef_: weights, shape `(1, d)`.
      intercept_: intercept, shape `(1,)`.
      n_iter_: L-BFGS iterations used.
      n_features_in_: d.
    """

    C: float
    tol: float
    max_iter: int

    @no_type_check  # scikit-learn's contract: __init__ stores any value; `fit` validates it
    def __init__(self, C: float = 1.0, *, tol: float = 1e-6, max_iter: int = 1000) -> None:
        self.C = C
        self.tol = tol
        self.max_iter = max_iter

    def fit(
        self, X: MatrixLike, y: ArrayLike | None, sample_weight: ArrayLike | None = None
    ) -> "LogisticProbe":
        """Fits the probe.

        Args:
          X: features, shape `(n, d)`.
          y: labels with exactly two classes, shape `(n,)`.
          sample_weight: optional non-negative weight per sample.

        Returns:
          self.

        Raises:
          DataError: `y` does not hold exactly two classes, or bad sample weights.
          ConfigError: `C`, `tol` or `max_iter` is not a positive number.
          ShapeError: `X` is not 2-D or does not match `y`.
          DataError: `X` holds NaN, infinite or non-numeric values (scikit-learn's check, raised
            as a VRP error with scikit-learn's text).
        """
        check_hyperparameters(self, C=self.C, tol=self.tol, max_iter=self.max_iter)
        features, raw = checked_data(self, X, y, dtype=np.float64)
        target = binary_classes(self, raw)
        sw = _sample_weight(sample_weight, features.shape[0])
        fit = fit_logistic(
            torch.tensor(features)[None],
            torch.tensor(target)[:, None],
            torch.tensor(sw)[:, None],
            C=float(self.C),
            tol=self.tol,
            max_iter=self.max_iter,
            polish=_POLISH_STEPS,
        )
        self.coef_ = fit.coef[0, :, 0].numpy()[None, :]
        self.intercept_ = fit.intercept[0].numpy()
        self.n_iter_ = fit.n_iter
        if not bool(fit.converged.all()):
            warnings.warn(
                f"LogisticProbe did not reach tol={self.tol} in max_iter={self.max_iter} "
                "iterations; raise max_iter or standardise the features.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def decision_function(self, X: MatrixLike) -> Float[np.ndarray, " n"]:
        """Log-odds of `classes_[1]` per sample."""
        check_fitted(self)
        X = checked_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_[0] + self.intercept_[0])


def _check_cs(cs: object) -> None:
    """`Cs` is a count of grid points (>= 1) or a non-empty list of positive numbers."""
    if isinstance(cs, int | np.integer) and not isinstance(cs, bool) and cs >= 1:
        return
    try:
        grid = np.asarray(cs, dtype=np.float64)
    except (TypeError, ValueError):
        grid = np.empty(0)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or grid.min() <= 0:
        raise ConfigError(
            f"SparseLogisticProbe(Cs=...) must be a number of C values (>= 1) or a list of "
            f"positive C values; got {cs!r}. Pass e.g. Cs=10 or Cs=[0.1, 1.0]."
        )


class SparseLogisticProbe(BinaryProbeMixin, BaseEstimator):
    """L1-sparse logistic probe on standardised features, C chosen by inner stratified CV.

    Args:
      Cs: number of C values on a log grid from 1e-4 to 1e4, or an explicit list.
      cv: folds of the inner CV that picks C (by AUROC).
      max_iter: solver iteration limit.
      seed: seed of the inner fold assignment.

    Attributes:
      classes_: the two labels seen in `fit`.
      C_: the chosen C.
      coef_: weights on standardised features, shape `(1, d)` (zero for dropped features).
      intercept_: intercept, shape `(1,)`.
      nonzero_fraction_: share of non-zero weights.
      model_: the fitted `StandardScaler` + `LogisticRegressionCV` pipeline.
      n_iter_: most solver iterations used by any inner fit.
      n_features_in_: d.
    """

    Cs: int | list[float]
    cv: int
    max_iter: int
    seed: int

    @no_type_check  # scikit-learn's contract: __init__ stores any value; `fit` validates it
    def __init__(
        self, Cs: int | list[float] = 10, *, cv: int = 5, max_iter: int = 1000, seed: int = 0
    ) -> None:
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, X: MatrixLike, y: ArrayLike | None) -> "SparseLogisticProbe":
        """Standardises `X`, picks C by inner CV and fits the L1 probe.

        Raises:
          DataError: `y` does not hold exactly two classes, or `X` is not finite and numeric.
          ShapeError: `X` is not 2-D or does not match `y`.
          ConfigError: `Cs`, `cv`, `max_iter` or `seed` is out of range.
        """
        check_hyperparameters(self, max_iter=self.max_iter)
        check_counts(self, cv=(self.cv, 2), seed=(self.seed, 0))
        _check_cs(self.Cs)
        features, raw = checked_data(self, X, y, dtype=np.float64)
        target = binary_classes(self, raw)
        inner = LogisticRegressionCV(
            Cs=self.Cs,
            l1_ratios=(1.0,),
            solver="liblinear",
            intercept_scaling=100.0,  # liblinear penalises the intercept: make that negligible
            cv=StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed),
            scoring="roc_auc",
            max_iter=self.max_iter,
            random_state=self.seed,
            use_legacy_attributes=False,
        )
        self.model_: Pipeline = make_pipeline(StandardScaler(), inner).fit(features, target)
        self.C_ = float(np.ravel(inner.C_)[0])
        self.coef_ = np.asarray(inner.coef_).reshape(1, -1)
        self.intercept_ = np.ravel(inner.intercept_)[:1]
        self.nonzero_fraction_ = float(np.mean(self.coef_ != 0))
        self.n_iter_ = int(np.max(inner.n_iter_))
        return self

    def decision_function(self, X: MatrixLike) -> Float[np.ndarray, " n"]:
        """Log-odds of `classes_[1]` per sample."""
        check_fitted(self)
        X = checked_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(self.model_.decision_function(X))
