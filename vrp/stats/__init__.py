"""Statistics with uncertainty by default: every function returns an `Estimate` (or `FdrResult`).

Proportions with Wilson intervals, point-biserial correlation (Fisher-z or bootstrap CI), AUROC
(DeLong or bootstrap CI), exact McNemar for paired accuracy changes, permutation tests,
Benjamini-Hochberg over grids of tests, means and ratios of means resampled by unit, and metric fusion scored on held-out folds. All randomness
comes from a numpy Generator built from a `seed` argument.
"""

from ._auroc import auroc as auroc
from ._correlation import point_biserial as point_biserial
from ._estimate import Estimate as Estimate
from ._fusion import FusionResult as FusionResult, fuse_signals as fuse_signals
from ._means import mean_estimate as mean_estimate, ratio_of_means as ratio_of_means
from ._multiple import FdrResult as FdrResult, benjamini_hochberg as benjamini_hochberg
from ._proportion import proportion as proportion
from ._tests import mcnemar_exact as mcnemar_exact, permutation_test as permutation_test

__all__ = [
    "Estimate",
    "FdrResult",
    "FusionResult",
    "auroc",
    "benjamini_hochberg",
    "fuse_signals",
    "mcnemar_exact",
    "mean_estimate",
    "permutation_test",
    "point_biserial",
    "proportion",
    "ratio_of_means",
]
