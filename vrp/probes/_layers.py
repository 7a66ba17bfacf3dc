"""Feature selection across layers: the "last 5 layers concatenated" probe input."""

from typing import no_type_check

import numpy as np
from jaxtyping import Float
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin

from vrp.core import ConfigError, DataError, ShapeError

from ._base import check_fitted


class LayerConcat(TransformerMixin, BaseEstimator):
    """Selects layers of `(n, layer, d)` activations and concatenates them to `(n, k * d)`.

    Put it in front of any probe: `make_pipeline(LayerConcat(), LogisticProbe())` is the
    "last 5 layers concatenated" probe. Layer indices follow Python indexing of the layer axis, so
    the default `(-5, -4, -3, -2, -1)` means the last five stored layers.

    Args:
      layers: positions on the layer axis to keep, in output order.

    Attributes:
      n_layers_: size of the layer axis seen in `fit`.
      n_features_in_: d seen in `fit`.
    """

    layers: tuple[int, ...]

    @no_type_check  # scikit-learn's contract: __init__ stores any value; `fit` validates it
    def __init__(self, layers: tuple[int, ...] = (-5, -4, -3, -2, -1)) -> None:
        self.layers = layers

    def _check(self, X: ArrayLike) -> np.ndarray:
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(
                f"LayerConcat expects numeric activations of shape (n, layer, d); numpy cannot "
                f"read {type(X).__name__} as floats ({err}). Pass a numeric array."
            ) from None
        if arr.ndim != 3:
            raise ShapeError(
                f"LayerConcat expects activations of shape (n, layer, d); got {arr.shape}. "
                "Stack per-layer (n, d) arrays with np.stack(..., axis=1)."
            )
        return arr

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> "LayerConcat":
        """Records the layer axis size and checks every requested layer exists.

        Raises:
          ShapeError: `X` is not 3-D.
          ConfigError: a requested layer is outside the layer axis.
        """
        arr = self._check(X)
        n_layers = arr.shape[1]
        layers = self.layers
        if isinstance(layers, int | str) or not all(
            isinstance(layer, int | np.integer) and not isinstance(layer, bool) for layer in layers
        ):
            raise ConfigError(
                f"LayerConcat(layers=...) must be a tuple of int positions on the layer axis; got "
                f"{layers!r}. Pass e.g. layers=(-2, -1)."
            )
        bad = [layer for layer in layers if not -n_layers <= layer < n_layers]
        if bad:
            # ConfigError, as ActivationStore.layer and probe_sweep raise: a position on the
            # stored layer axis is a coordinate of the data, not a model Site (SiteError).
            raise ConfigError(
                f"layers {bad} are out of range for activations with {n_layers} layers "
                f"(valid: {-n_layers}..{n_layers - 1}). Pass positions on the layer axis."
            )
        self.n_layers_ = n_layers
        self.n_features_in_ = arr.shape[2]
        return self

    def transform(self, X: ArrayLike) -> Float[np.ndarray, "n kd"]:
        """Concatenates the selected layers of each sample.

        Raises:
          ShapeError: `X` does not have the layer and feature sizes seen in `fit`.
        """
        check_fitted(self)
        arr = self._check(X)
        if arr.shape[1:] != (self.n_layers_, self.n_features_in_):
            raise ShapeError(
                f"fitted on (n, {self.n_layers_}, {self.n_features_in_}) activations; "
                f"got {arr.shape}."
            )
        return arr[:, np.asarray(self.layers, dtype=np.intp), :].reshape(arr.shape[0], -1)
