"""The one stratified k-fold split behind every held-out score (private; `vrp.probes` imports it).

Metric fusion here and the probes in `vrp.probes` must split the same way and refuse the same
inputs, so the check and the split live in one place. `vrp.probes` may import `vrp.stats`, never
the reverse, so the helper lives here.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold

from vrp.core import ConfigError, DataError

Split = tuple[np.ndarray, np.ndarray]
"""Row indices `(train, test)` of one fold."""


def stratified_folds(y: np.ndarray, n_splits: int, seed: int) -> list[Split]:
    """The `(train, test)` row indices of each fold of a shuffled stratified k-fold split.

    The split is scikit-learn's `StratifiedKFold(n_splits, shuffle=True, random_state=seed)`.

    Args:
      y: 0/1 labels, shape `(n,)` (already checked by `as_binary`).
      n_splits: number of folds, at least 2.
      seed: seed of the shuffle.

    Returns:
      One `(train, test)` pair per fold; the test rows partition `0 .. n - 1`.

    Raises:
      ConfigError: `n_splits` is not a whole number >= 2.
      DataError: a class has fewer than `n_splits` samples, so some test fold would miss it.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise ConfigError(
            f"n_splits must be at least 2 for held-out scores; got {n_splits!r}. Pass a whole "
            "number such as n_splits=5."
        )
    rarest = int(np.bincount(y, minlength=2).min())
    if rarest < n_splits:
        raise DataError(
            f"the rarer class has {rarest} samples, fewer than n_splits={n_splits}; "
            "lower n_splits or add samples."
        )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((y.size, 1)), y))
