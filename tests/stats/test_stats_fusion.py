"""Metric fusion: z-scored signals, logistic regression, held-out AUROC."""

import numpy as np
import pytest

from vrp.core import ConfigError, DataError, ShapeError
from vrp.stats import fuse_signals
from vrp.stats._folds import stratified_folds


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


def test_stratified_folds_partition_the_rows_and_keep_both_classes_in_each_fold() -> None:
    y = np.repeat([0, 1], [14, 6])
    folds = stratified_folds(y, 3, seed=0)
    assert len(folds) == 3
    tested = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(tested, np.arange(20))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 20
        assert y[test].sum() == 2  # 6 positives over 3 folds
    assert [t.tolist() for _, t in folds] == [t.tolist() for _, t in stratified_folds(y, 3, 0)]


def test_stratified_folds_errors() -> None:
    with pytest.raises(ConfigError, match="n_splits must be at least 2 for held-out scores; got 1"):
        stratified_folds(np.array([0, 1, 0, 1]), 1, seed=0)
    with pytest.raises(DataError, match="rarer class has 1 samples, fewer than n_splits=2"):
        stratified_folds(np.array([0, 0, 0, 1]), 2, seed=0)
