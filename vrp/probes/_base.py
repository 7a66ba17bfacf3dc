"""What every probe shares: the binary-classifier mixin and the checks of `fit` (private).

Each probe defines `fit` and `decision_function` (log-odds of `classes_[1]`); `BinaryProbeMixin`
derives `predict_proba`, `predict` and the scikit-learn tags from them, so the three probes cannot
drift apart. It extends `ClassifierMixin` and sits left of `BaseEstimator`, as scikit-learn wants
mixins (`class LogisticProbe(BinaryProbeMixin, BaseEstimator)`).
"""

from typing import TypeAlias

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets

from vrp.core import ConfigError, DataError

MatrixLike: TypeAlias = ArrayLike | sparse.spmatrix | sparse.sparray
"""What a scikit-learn estimator method must accept; `validate_data` then rejects what it cannot
use (sparse input, NaN, wrong shape) with scikit-learn's own errors."""


class BinaryProbeMixin(ClassifierMixin):
    """`predict_proba`, `predict` and the tags of a binary probe, from its `decision_function`.

    A subclass sets `classes_` in `fit` (see `binary_classes`) and defines `decision_function`;
    one whose model yields probabilities first (`MLPProbe`) overrides `predict_proba` too.
    """

    classes_: np.ndarray

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_class = False  # binary only: 1 = correct answer
        return tags

    def decision_function(self, X: MatrixLike) -> Float[np.ndarray, " n"]:
        """Log-odds of `classes_[1]` per sample (defined by each probe)."""
        raise NotImplementedError(f"{type(self).__name__} must define decision_function.")

    def predict_proba(self, X: MatrixLike) -> Float[np.ndarray, "n 2"]:
        """Probabilities of `classes_[0]` and `classes_[1]` per sample."""
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: MatrixLike) -> np.ndarray:
        """The more likely class per sample (`classes_[1]` where the log-odds are positive)."""
        positive = self.decision_function(X) > 0
        return np.asarray(self.classes_[positive.astype(int)])


def binary_classes(estimator: BaseEstimator, y: np.ndarray) -> np.ndarray:
    """Checks that `y` holds exactly two classes; returns `y` as 0/1 floats (1 = `classes_[1]`)."""
    check_classification_targets(y)
    estimator.classes_ = np.unique(y)
    if estimator.classes_.size != 2:
        raise DataError(
            "Only binary classification is supported. "
            f"{type(estimator).__name__} is a binary probe (1 = correct answer), but y holds "
            f"{estimator.classes_.size} class(es): {estimator.classes_[:5].tolist()}. "
            "Pass labels with exactly two classes."
        )
    return (y == estimator.classes_[1]).astype(np.float64)


def check_hyperparameters(estimator: BaseEstimator, **values: object) -> None:
    """Raises `ConfigError` unless every value is a positive real number (ints where integral)."""
    for name, value in values.items():
        integral = name in ("max_iter", "cv", "hidden")
        kinds = (int, np.integer) if integral else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
            raise ConfigError(
                f"{type(estimator).__name__}({name}=...) must be a positive "
                f"{'integer' if integral else 'number'}; got {value!r}."
            )
