"""Benjamini-Hochberg control of the false discovery rate over a grid of tests."""

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float
from numpy.typing import ArrayLike
from scipy import stats

from vrp.core import ConfigError, DataError


@dataclass(frozen=True, kw_only=True)
class FdrResult:
    """Adjusted p-values and rejections, in the shape of the p-values passed in.

    Attributes:
      q_values: BH-adjusted p-values, same shape as the input grid (layer x head x position ...).
      rejected: `q_values <= alpha`: the discoveries at false discovery rate `alpha`.
      alpha: the false discovery rate controlled.
      n: number of tests corrected for (every cell of the grid).
    """

    q_values: Float[np.ndarray, "..."]
    rejected: Bool[np.ndarray, "..."]
    alpha: float
    n: int

    @property
    def n_rejected(self) -> int:
        """Number of discoveries."""
        return int(self.rejected.sum())


def benjamini_hochberg(p_values: ArrayLike, *, alpha: float = 0.05) -> FdrResult:
    """Benjamini-Hochberg FDR control over every cell of a grid of p-values.

    The q-values are `scipy.stats.false_discovery_control(..., method="bh")` on the flattened
    grid, reshaped back, so a layer x head x position grid is corrected as one family.

    Args:
      p_values: p-values of any shape.
      alpha: the false discovery rate to control.

    Returns:
      An `FdrResult` with q-values and rejections shaped like `p_values`.

    Raises:
      DataError: a p-value is NaN or outside [0, 1], or there are none.
      ConfigError: `alpha` is not in (0, 1).
    """
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"p-values must be numbers in [0, 1]; got {type(p_values).__name__} that numpy cannot "
            f"read as floats ({err}). Pass an array of p-values."
        ) from None
    if p_values is None:
        raise DataError("benjamini_hochberg got None; pass an array of p-values in [0, 1].")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < alpha < 1.0:
        raise ConfigError(
            f"alpha must lie strictly between 0 and 1; got {alpha!r}. Pass e.g. alpha=0.05."
        )
    if p.size == 0:
        raise DataError("benjamini_hochberg got no p-values; pass at least one.")
    bad = ~((p >= 0.0) & (p <= 1.0))
    if bad.any():
        raise DataError(
            f"p-values must lie in [0, 1]; {int(bad.sum())} do not (first: {p[bad][0]}). "
            "Drop untested cells instead of filling them with NaN."
        )
    q = stats.false_discovery_control(p.ravel(), method="bh").reshape(p.shape)
    return FdrResult(q_values=q, rejected=q <= alpha, alpha=float(alpha), n=int(p.size))
