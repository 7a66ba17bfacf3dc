"""Bootstrap intervals with one policy for the degenerate cases (private).

`scipy.stats.bootstrap` builds BCa intervals, which are NaN when their bias correction or
acceleration is undefined: every resample lands on one side of the estimate (a count of distinct
values, which no resample exceeds), or every jackknife value is the same (the AUROC of perfectly
separated classes). scipy then only warns, and a NaN interval travels on into a report. The policy:

- the BCa interval is NaN but every resample has a value: fall back to the percentile interval of
  the same resamples (it needs no bias or acceleration term), and say so in the method name;
- the statistic itself is NaN (or infinite) in some resamples (a correlation over a resample that
  drew one class only): no interval of those resamples means anything, so raise a `DataError`
  that says how many resamples failed, why, and what to do instead.
"""

import warnings
from typing import Any

import numpy as np
from scipy import stats

from vrp.core import DataError


def bootstrap_interval(*args: Any, explain: str, **kwargs: Any) -> tuple[float, float, str]:
    """Runs `scipy.stats.bootstrap(*args, **kwargs)` (BCa) under the policy of this module.

    Args:
      *args: positional arguments of `scipy.stats.bootstrap` (data, statistic).
      explain: why the statistic can be undefined in a resample and what to do about it; ends
        the `DataError` message.
      **kwargs: keyword arguments of `scipy.stats.bootstrap`; `method` must not be given.

    Returns:
      `(low, high, kind)`, with `kind` "BCa bootstrap" or "percentile bootstrap (BCa undefined)".

    Raises:
      DataError: the statistic is NaN or infinite in some resamples.
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # scipy's warning and numpy's 0/0 both announce the NaN interval handled below
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap(*args, method="BCa", **kwargs)
    resamples = np.asarray(boot.bootstrap_distribution)
    undefined = int((~np.isfinite(resamples)).sum())
    if undefined:
        raise DataError(
            f"the statistic is undefined (NaN or infinite) in {undefined:,} of "
            f"{resamples.size:,} bootstrap resamples, so no bootstrap interval exists: {explain}"
        )
    low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    if np.isfinite(low) and np.isfinite(high):
        return low, high, "BCa bootstrap"
    tail = 50.0 * (1.0 - kwargs.get("confidence_level", 0.95))  # scipy's percentile interval
    low, high = np.percentile(resamples, [tail, 100.0 - tail])
    return float(low), float(high), "percentile bootstrap (BCa undefined)"
