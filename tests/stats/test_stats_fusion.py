"""Metric fusion: z-scored signals, logistic regression, held-out AUROC."""

import numpy as np
import pytest

from vrp.core import ConfigError, DataError, ShapeError
from vrp.stats import fuse_signals


def _signals(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two independent noisy views of correctness on very different scales, plus pure noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    a = 1000.0 * (y + rng.normal(0, 1.2, n))
    b = -0.01 * (y + rng.normal(0, 1.2, n))  # negatively oriented: fusion learns the sign
    noise = rng.normal(5, 3, n)
    return np.column_stack([a, b, noise]), y


def test_fusion_beats_each_signal_and_ignores_noise() -> None:
    x, y = _signals()
    res = fuse_signals(x, y, names=["consistency", "entropy", "noise"])
    best_single = max(e.estimate for e in res.single)
    assert res.auroc.estimate > best_single + 0.02
    assert res.single[2].estimate < 0.6
    assert res.names == ("consistency", "entropy", "noise")
    assert res.coefficients[0] > 0 > res.coefficients[1]
    assert abs(res.coefficients[2]) < 0.3 * abs(res.coefficients[0])
    assert res.auroc.n == 600 and res.n_splits == 5


def test_fusion_is_seeded() -> None:
    x, y = _signals(200, seed=1)
    assert fuse_signals(x, y, seed=4) == fuse_signals(x, y, seed=4)


def test_fusion_errors() -> None:
    x, y = _signals(100)
    with pytest.raises(ShapeError, match="2-D"):
        fuse_signals(x[:, 0], y)
    with pytest.raises(ShapeError, match="2 names for 3 signals"):
        fuse_signals(x, y, names=["a", "b"])
    with pytest.raises(ConfigError, match="n_splits"):
        fuse_signals(x, y, n_splits=1)
    rare = np.zeros(100, dtype=int)
    rare[:3] = 1
    with pytest.raises(DataError, match="fewer than n_splits=5"):
        fuse_signals(x, rare)
