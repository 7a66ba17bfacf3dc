"""Wrongly typed arguments to `vrp.probes` raise VRP errors for users, who run without the
jaxtyping hook that rejects them first under pytest: checked in a plain interpreter."""

from tests.plain import check_plain_errors

_SCRIPT = """
import numpy as np
from vrp import DataError, VrpError
from vrp.probes import (LogisticProbe, SweepConfig, evaluate_probe, probe_sweep,
                        rank_by_weight)

rng = np.random.default_rng(0)
x, y = rng.standard_normal((40, 2, 4)), np.tile([0, 1], 20)
calls = {
    "probe-a-string": lambda: evaluate_probe("probe", x[:, 0], y),
    "sweep-config-dict": lambda: probe_sweep(x, y, {"C": 1.0}),
    "sweep-layers-text": lambda: probe_sweep(x, y, layers=["a"]),
    "sweep-batch-float": lambda: SweepConfig(layer_batch=1.5),
    "sweep-tol-text": lambda: SweepConfig(tol="1e-6"),
    "rank-top-float": lambda: rank_by_weight([1.0, 2.0], top_k=1.5),
    "rank-text-weights": lambda: rank_by_weight(["a", "b"]),
    "fit-dict-features": lambda: LogisticProbe().fit([[{"a": 1}] * 4] * 40, y),
}
for name, call in calls.items():
    try:
        call()
        print(name, "no error")
    except VrpError as error:
        kind = type(error).__name__
        if isinstance(error, DataError) and isinstance(error, TypeError):
            kind = "DataError+TypeError"
        print(name, kind, " ".join(str(error).split()))
"""

EXPECTED = {
    "probe-a-string": "ConfigError probe must be a scikit-learn estimator (with fit and get_params)",
    "sweep-config-dict": "ConfigError config must be a SweepConfig; got dict",
    "sweep-layers-text": "ConfigError layers must be int layer indices; got ['a']",
    "sweep-batch-float": "ConfigError layer_batch must be a whole number >= 1; got 1.5",
    "sweep-tol-text": "ConfigError need tol > 0, a finite number; got '1e-6'",
    "rank-top-float": "ConfigError top_k must be a whole number >= 1",
    "rank-text-weights": "DataError coef must be numbers",
    # scikit-learn raises TypeError here and its estimator checks expect one: the VRP error is both
    "fit-dict-features": "DataError+TypeError LogisticProbe: float() argument must be a string",
}


def test_wrong_types_raise_vrp_errors_in_a_plain_interpreter() -> None:
    check_plain_errors(_SCRIPT, EXPECTED)
