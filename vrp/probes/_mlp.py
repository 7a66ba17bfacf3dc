"""A small non-linear probe: one hidden layer on standardised features."""

from typing import no_type_check

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike
from scipy.special import logit
from sklearn.base import BaseEstimator
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ._base import (
    BinaryProbeMixin,
    MatrixLike,
    binary_classes,
    check_counts,
    check_fitted,
    check_hyperparameters,
    checked_data,
)


class MLPProbe(BinaryProbeMixin, BaseEstimator):
    """One-hidden-layer MLP probe (scikit-learn `MLPClassifier`) on standardised features.

    If it beats `LogisticProbe` on held-out AUROC, correctness is encoded non-linearly at that layer.

    Args:
      hidden: width of the hidden layer.
      alpha: L2 strength of the MLP weights.
      max_iter: epoch limit (Adam, early stopping on a 10% validation split).
      seed: seed of the initialisation and the validation split.

    Attributes:
      classes_: the two labels seen in `fit`.
      model_: the fitted `StandardScaler` + `MLPClassifier` pipeline.
      n_iter_: epochs run.
      n_features_in_: d.
    """

    hidden: int
    alpha: float
    max_iter: int
    seed: int

    @no_type_check  # scikit-learn's contract: __init__ stores any value; `fit` validates it
    def __init__(
        self, hidden: int = 64, *, alpha: float = 1e-3, max_iter: int = 300, seed: int = 0
    ) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, X: MatrixLike, y: ArrayLike | None) -> "MLPProbe":
        """Fits the MLP.

        Raises:
          DataError: `y` does not hold exactly two classes, or `X` is not finite and numeric.
          ShapeError: `X` is not 2-D or does not match `y`.
          ConfigError: `hidden`, `alpha`, `max_iter` or `seed` is out of range.
        """
        check_hyperparameters(self, hidden=self.hidden, alpha=self.alpha, max_iter=self.max_iter)
        check_counts(self, seed=(self.seed, 0))
        features, raw = checked_data(self, X, y, dtype=np.float64)
        target = binary_classes(self, raw)
        mlp = MLPClassifier(
            hidden_layer_sizes=(self.hidden,),
            alpha=self.alpha,
            max_iter=self.max_iter,
            early_stopping=features.shape[0] >= 50,  # too few rows for a validation split otherwise
            random_state=self.seed,
        )
        self.model_: Pipeline = make_pipeline(StandardScaler(), mlp).fit(features, target)
        self.n_iter_ = int(mlp.n_iter_)
        return self

    def predict_proba(self, X: MatrixLike) -> Float[np.ndarray, "n 2"]:
        """Probabilities of `classes_[0]` and `classes_[1]` per sample (the MLP's own: they come
        first here, and `decision_function` is derived from them)."""
        check_fitted(self)
        X = checked_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(self.model_.predict_proba(X))

    def decision_function(self, X: MatrixLike) -> Float[np.ndarray, " n"]:
        """Log-odds of `classes_[1]` per sample (clipped away from 0 and 1)."""
        return np.asarray(logit(np.clip(self.predict_proba(X)[:, 1], 1e-12, 1 - 1e-12)))
