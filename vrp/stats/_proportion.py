"""A binomial proportion (an accuracy, a precision, a yes-ratio) with its Wilson score interval.

Wilson rather than the textbook Wald interval ``p +- z * sqrt(p (1 - p) / n)``: Wald collapses to a
zero-width interval at 0/n and n/n and undercovers near the ends, which is exactly where a small
benchmark split lands. The interval itself is scipy's (``binomtest(...).proportion_ci``), so this
module only adds the checks, the ``n == 0`` case and the `Estimate` shape.
"""

import math

import numpy as np
from scipy import stats

from vrp.core import DataError

from ._estimate import Estimate, check_confidence


def proportion(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """The share ``successes / n`` with its Wilson score interval (no continuity correction).

    There is no hypothesis test, so ``p_value`` is NaN. With ``n == 0`` nothing is known: the
    estimate is NaN and the interval is all of [0, 1].

    Args:
      successes: number of successes, ``0 <= successes <= n``.
      n: number of trials.
      confidence: coverage of the interval.

    Returns:
      The proportion, its interval, ``p_value`` NaN, and ``method`` "wilson".

    Raises:
      DataError: `successes` or `n` is not a whole number, is negative, or `successes` exceeds
        `n`.
      ConfigError: `confidence` is not strictly between 0 and 1.
    """
    confidence = check_confidence(confidence)
    for name, count in (("successes", successes), ("n", n)):
        if isinstance(count, bool) or not isinstance(count, int | np.integer):
            raise DataError(
                f"a proportion needs whole counts; got {name}={count!r} "
                f"({type(count).__name__}). Pass the count of successes and the number of trials "
                "as ints (e.g. int(correct.sum()), len(correct))."
            )
    if n < 0 or not 0 <= successes <= n:
        raise DataError(
            f"a proportion needs 0 <= successes <= n; got successes={successes}, n={n}. "
            "Pass the count of successes and the number of trials."
        )
    if n == 0:
        low, high, value = 0.0, 1.0, math.nan
    else:
        ci = stats.binomtest(successes, n).proportion_ci(
            confidence_level=confidence, method="wilson"
        )
        low, high, value = float(ci.low), float(ci.high), successes / n
    return Estimate(
        estimate=value,
        ci_low=low,
        ci_high=high,
        p_value=math.nan,
        n=n,
        method="wilson",
        confidence=confidence,
    )
