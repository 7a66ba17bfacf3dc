"""Wrongly typed arguments to `vrp.stats` raise VRP errors for users, who run without the jaxtyping
hook that rejects them first under pytest: checked in a plain interpreter."""

from tests.plain import check_plain_errors

_SCRIPT = """
import numpy as np
from vrp import VrpError
from vrp.stats import (auroc, benjamini_hochberg, fuse_signals, permutation_test,
                       point_biserial, proportion)

x, y = np.arange(10.0), np.tile([0, 1], 5)
calls = {
    "proportion-float": lambda: proportion(1.5, 3),
    "proportion-string": lambda: proportion("1", 3),
    "proportion-array": lambda: proportion(np.array([1, 2]), 3),
    "proportion-n-float": lambda: proportion(1, 3.0),
    "auroc-interval": lambda: auroc(x, y, ci="wald"),
    "auroc-confidence-text": lambda: auroc(x, y, confidence="95%"),
    "auroc-resamples-float": lambda: auroc(x, y, ci="bootstrap", n_resamples=2.5),
    "biserial-seed-float": lambda: point_biserial(x, y, seed=1.5),
    "permutation-statistic-name": lambda: permutation_test(x, x, statistic="mean"),
    "fdr-none": lambda: benjamini_hochberg(None),
    "fdr-alpha-text": lambda: benjamini_hochberg([0.1], alpha="0.05"),
    "fusion-splits-float": lambda: fuse_signals(np.c_[x, x], y, n_splits=2.5),
    "fusion-C-text": lambda: fuse_signals(np.c_[x, x], y, C="1"),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        print(name, type(error).__name__, " ".join(str(error).split()))
"""

EXPECTED = {
    "proportion-float": "DataError a proportion needs whole counts; got successes=1.5 (float)",
    "proportion-string": "DataError a proportion needs whole counts; got successes='1' (str)",
    "proportion-array": "DataError a proportion needs whole counts; got successes=array",
    "proportion-n-float": "DataError a proportion needs whole counts; got n=3.0 (float)",
    "auroc-interval": "ConfigError ci must be 'delong' or 'bootstrap'; got 'wald'",
    "auroc-confidence-text": "ConfigError confidence must lie strictly between 0 and 1",
    "auroc-resamples-float": "ConfigError n_resamples must be a whole number >= 1; got 2.5",
    "biserial-seed-float": "ConfigError seed must be a whole number >= 0; got 1.5",
    "permutation-statistic-name": "ConfigError statistic must be a callable f(x, y, axis); got 'mean'",
    "fdr-none": "DataError benjamini_hochberg got None",
    "fdr-alpha-text": "ConfigError alpha must lie strictly between 0 and 1; got '0.05'",
    "fusion-splits-float": "ConfigError n_splits must be at least 2 for held-out scores; got 2.5",
    "fusion-C-text": "ConfigError need C > 0, a finite number; got '1'",
}


def test_wrong_types_raise_vrp_errors_in_a_plain_interpreter() -> None:
    check_plain_errors(_SCRIPT, EXPECTED)
