"""Neuron rankings for ablation: by probe weight and by correct-minus-incorrect mean activation."""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int
from numpy.typing import ArrayLike

from vrp.core import ConfigError, DataError, ShapeError
from vrp.stats._estimate import as_binary


@dataclass(frozen=True, kw_only=True)
class NeuronRanking:
    """Neurons (feature indices) ordered from most to least important.

    Attributes:
      indices: neuron indices, most important first.
      scores: the signed score of each listed neuron (weight, or mean difference).
      method: "weight", "scaled weight", "mean difference" or "standardised mean difference".
      d: number of neurons ranked.
    """

    indices: Int[np.ndarray, " k"]
    scores: Float[np.ndarray, " k"]
    method: str
    d: int

    def top(self, k: int) -> tuple[int, ...]:
        """The `k` most important neuron indices.

        Raises:
          ConfigError: `k` is not a whole number >= 1.
        """
        _check_top(k, "k")
        return tuple(int(i) for i in self.indices[:k])


def _check_top(k: object, name: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(
            f"{name} must be a whole number >= 1 (how many neurons to keep); got {k!r}. "
            f"Pass e.g. {name}=10{', or None for all' if name == 'top_k' else ''}."
        )


def _numbers(values: ArrayLike, name: str) -> np.ndarray:
    """`values` as a float64 array with at least one entry, all finite."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{name} must be numbers; numpy cannot read {type(values).__name__} as floats "
            f"({err}). Pass a numeric array."
        ) from None
    if arr.size == 0:
        raise ShapeError(f"{name} is empty (shape {arr.shape}); pass one value per neuron.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(
            f"{name} holds {bad} NaN or infinite values; a ranking of them is meaningless. Drop "
            "or impute them first (e.g. refit the probe on finite activations)."
        )
    return arr


def _ranked(score: np.ndarray, top_k: int | None, method: str) -> NeuronRanking:
    if top_k is not None:
        _check_top(top_k, "top_k")
    order = np.argsort(-np.abs(score), kind="stable")[:top_k]
    return NeuronRanking(indices=order, scores=score[order], method=method, d=score.size)


def rank_by_weight(
    coef: ArrayLike, *, scale: ArrayLike | None = None, top_k: int | None = None
) -> NeuronRanking:
    """Ranks neurons by the magnitude of a linear probe's weights.

    Raw-feature weights mix importance with the feature's scale; pass the features' standard
    deviation as `scale` to rank by |weight x std| (the weight a probe on standardised features
    would have, to first order).

    Args:
      coef: probe weights, shape `(d,)` or `(1, d)` (e.g. `LogisticProbe().coef_`).
      scale: optional per-neuron scale, shape `(d,)`.
      top_k: keep only the `top_k` best; default all.

    Returns:
      A `NeuronRanking` whose scores are the (scaled) weights.

    Raises:
      ShapeError: `coef` is not one weight per neuron, or `scale` does not match it.
      DataError: `coef` or `scale` holds NaN, infinite or non-numeric values.
      ConfigError: `top_k` is not None or a whole number >= 1.
    """
    w = _numbers(coef, "coef")
    if w.ndim == 2 and w.shape[0] == 1:
        w = w[0]
    if w.ndim != 1:
        raise ShapeError(f"coef must have shape (d,) or (1, d); got {w.shape}.")
    if scale is None:
        return _ranked(w, top_k, "weight")
    s = _numbers(scale, "scale")
    if s.shape != w.shape:
        raise ShapeError(f"scale must have one value per neuron, shape {w.shape}; got {s.shape}.")
    return _ranked(w * s, top_k, "scaled weight")


def rank_by_mean_difference(
    acts: ArrayLike, labels: ArrayLike, *, standardize: bool = False, top_k: int | None = None
) -> NeuronRanking:
    """Ranks neurons by mean activation on correct minus incorrect samples.

    Args:
      acts: one layer's activations, shape `(n, d)`.
      labels: 0/1 correctness, shape `(n,)`.
      standardize: divide by the pooled within-class standard deviation (Cohen's d), so that
        high-variance neurons do not dominate.
      top_k: keep only the `top_k` best; default all.

    Returns:
      A `NeuronRanking` whose scores are the (standardised) differences, correct minus incorrect.

    Raises:
      ShapeError: `acts` is not 2-D or does not match `labels`.
      DataError: labels are not binary with both classes, or `acts` is not finite.
      ConfigError: `top_k` is not None or a whole number >= 1.
    """
    x = _numbers(acts, "acts")
    y = as_binary(labels)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ShapeError(f"acts must have shape (n, d) with n = {y.size} labels; got {x.shape}.")
    pos, neg = x[y == 1], x[y == 0]
    diff = pos.mean(0) - neg.mean(0)
    if not standardize:
        return _ranked(diff, top_k, "mean difference")
    dof = max(x.shape[0] - 2, 1)
    pooled = np.sqrt((((pos - pos.mean(0)) ** 2).sum(0) + ((neg - neg.mean(0)) ** 2).sum(0)) / dof)
    return _ranked(diff / np.where(pooled > 0, pooled, 1.0), top_k, "standardised mean difference")
