"""What every probe shares: the binary-classifier mixin and the checks of `fit` (private).

Each probe defines `fit` and `decision_function` (log-odds of `classes_[1]`); `BinaryProbeMixin`
derives `predict_proba`, `predict` and the scikit-learn tags from them, so the three probes cannot
drift apart. It extends `ClassifierMixin` and sits left of `BaseEstimator`, as scikit-learn wants
mixins (`class LogisticProbe(BinaryProbeMixin, BaseEstimator)`).
"""

import re
from typing import Any, TypeAlias

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from vrp.core import ConfigError, DataError, ShapeError

MatrixLike: TypeAlias = ArrayLike | sparse.spmatrix | sparse.sparray
"""What a scikit-learn estimator method must accept; `checked_data` then rejects what it cannot
use (sparse input, NaN, wrong shape) with VRP errors carrying scikit-learn's own text."""


class ProbeNotFittedError(ConfigError, NotFittedError):
    """A probe was asked to predict or transform before `fit`.

    Also a scikit-learn `NotFittedError`, so code (and scikit-learn's own checks) that catch that
    keep working.
    """


class _DataTypeError(DataError, TypeError):
    """Input of a type numpy cannot turn into numbers (e.g. a dict inside X).

    Also a `TypeError`, which is what scikit-learn raises there and what its checks expect.
    """


_SHAPE_PROBLEMS = re.compile(
    r"Expected 2D array|Found array with dim|features, but|inconsistent numbers of samples"
    r"|should be a 1d array|0 feature\(s\)"
)
_FIXES = (
    (r"NaN|infinity", "Drop or impute the samples holding NaN or infinite values first."),
    (r"[Ss]parse", "Pass a dense array (X.toarray())."),
    (r"features, but", "Pass the same features (columns) the probe was fitted on."),
    (r"0 sample\(s\)", "Pass at least one sample."),
    (r"y to be passed|target y is None", "Pass the labels: fit(X, y)."),
    (r"Unknown label type", "Pass class labels (e.g. 0/1 or two strings), not continuous values."),
)


def checked_data(estimator: BaseEstimator, *args: Any, **kwargs: Any) -> Any:
    """scikit-learn's `validate_data`, raising its input errors as VRP errors.

    The message keeps scikit-learn's text (which says what arrived and what was expected, and which
    scikit-learn's estimator checks match) and adds how to fix it. Shape problems raise
    `ShapeError`, anything else `DataError`; both are `ValueError`s, as scikit-learn's are. Where
    scikit-learn raises `TypeError` (values numpy cannot read as numbers), the error is a
    `DataError` that is also a `TypeError`.
    """
    try:
        return validate_data(estimator, *args, **kwargs)
    except (TypeError, ValueError) as err:
        raise _vrp_error(estimator, err) from err


def _vrp_error(estimator: BaseEstimator, err: Exception) -> Exception:
    name, text = type(estimator).__name__, str(err)
    scan = text.replace(name, "")  # "SparseLogisticProbe" must not read as sparse input
    fix = next((hint for pattern, hint in _FIXES if re.search(pattern, scan)), "")
    fix = fix or "Pass X as a finite numeric (n_samples, n_features) array and y as its labels."
    message = f"{name}: {text.rstrip()} {fix}"
    if isinstance(err, TypeError) and not re.search(r"[Ss]parse", scan):
        return _DataTypeError(message)
    return ShapeError(message) if _SHAPE_PROBLEMS.search(scan) else DataError(message)


def check_fitted(estimator: BaseEstimator) -> None:
    """scikit-learn's `check_is_fitted`, raising `ProbeNotFittedError`."""
    try:
        check_is_fitted(estimator)
    except NotFittedError as err:
        raise ProbeNotFittedError(str(err)) from None


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
    try:
        check_classification_targets(y)
    except ValueError as err:
        raise _vrp_error(estimator, err) from err
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
                f"{'integer' if integral else 'number'}; got {value!r}. Pass a value > 0."
            )


def check_counts(estimator: BaseEstimator, **values: tuple[object, int]) -> None:
    """Raises `ConfigError` unless every `name=(value, minimum)` is a whole number >= minimum."""
    for name, (value, minimum) in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ConfigError(
                f"{type(estimator).__name__}({name}=...) must be a whole number >= {minimum}; "
                f"got {value!r}."
            )
