"""Exact McNemar, permutation tests, Benjamini-Hochberg and the public surface of vrp.stats."""

import numpy as np
import pytest
from scipy import stats

import vrp.probes
import vrp.stats
import vrp.store
from vrp.core import ConfigError, DataError, ShapeError
from vrp.stats import benjamini_hochberg, mcnemar_exact, permutation_test


def _pairs(n11: int, n10: int, n01: int, n00: int) -> tuple[np.ndarray, np.ndarray]:
    """Before/after correctness vectors with the given 2x2 cell counts (1 = correct)."""
    before = np.repeat([1, 1, 0, 0], [n11, n10, n01, n00])
    after = np.repeat([1, 0, 1, 0], [n11, n10, n01, n00])
    return before, after


def test_mcnemar_p_value_is_the_exact_binomial_test_on_discordant_pairs() -> None:
    before, after = _pairs(50, 3, 11, 36)
    est = mcnemar_exact(before, after)
    assert est.estimate == pytest.approx((11 - 3) / 100)
    assert est.p_value == pytest.approx(stats.binomtest(11, 14, 0.5).pvalue)
    assert est.n == 100
    # Agresti-Min: half a count in each cell, then the Wald interval.
    d = (11 - 3) / 102
    se = np.sqrt(((11.5 + 3.5) - (11.5 - 3.5) ** 2 / 102) / 102**2)
    assert (est.ci_low, est.ci_high) == pytest.approx((d - 1.959964 * se, d + 1.959964 * se))


def test_mcnemar_known_values() -> None:
    assert mcnemar_exact(*_pairs(5, 0, 6, 1)).p_value == pytest.approx(2 * 0.5**6)
    one_flip = mcnemar_exact(*_pairs(11, 1, 0, 0))  # the paper's "-8.3 pp": not significant
    assert one_flip.estimate == pytest.approx(-1 / 12)
    assert one_flip.p_value == 1.0
    assert one_flip.ci_low < 0 < one_flip.ci_high
    assert mcnemar_exact(*_pairs(3, 0, 0, 2)).p_value == 1.0


def test_mcnemar_errors() -> None:
    with pytest.raises(DataError, match="1-D 0/1 or boolean vector"):
        mcnemar_exact([0, 1, 2], [0, 1, 1])
    with pytest.raises(ShapeError, match="lengths 3 and 2"):
        mcnemar_exact([0, 1, 1], [0, 1])


def test_permutation_test_matches_scipy_with_the_same_generator() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.5, 1, 40), rng.normal(0.0, 1, 50)
    est = permutation_test(x, y, n_resamples=999, seed=3)

    def diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    ref = stats.permutation_test(
        (x, y), diff, vectorized=True, n_resamples=999, rng=np.random.default_rng(3)
    )
    assert est.p_value == pytest.approx(ref.pvalue)
    assert est.estimate == pytest.approx(x.mean() - y.mean())
    assert est.ci_low < est.estimate < est.ci_high
    assert est.n == 90


def test_paired_permutation_test_detects_a_consistent_shift() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 30)
    est = permutation_test(base + 0.5 + rng.normal(0, 0.1, 30), base, paired=True, seed=0)
    assert est.p_value < 0.001
    assert est.n == 30
    assert est.ci_low < 0.5 < est.ci_high


def _distinct(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Number of distinct values in `a`: no resample can exceed the observed count."""
    return (np.diff(np.sort(a, axis=axis), axis=axis) != 0).sum(axis=axis) + 1.0


def test_permutation_test_falls_back_to_the_percentile_interval_where_bca_is_nan() -> None:
    # Every resample has fewer distinct values than the data and every jackknife value is the
    # same, so BCa's bias and acceleration are undefined: scipy gave [nan, nan] and a warning.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    est = permutation_test(x, y, statistic=_distinct, n_resamples=999, seed=1)
    assert est.method == "permutation test p, percentile bootstrap (BCa undefined) CI"
    generator = np.random.default_rng(1)  # consumed by the permutation test first, as inside
    stats.permutation_test((x, y), _distinct, vectorized=True, n_resamples=999, rng=generator)
    ref = stats.bootstrap(
        (x, y), _distinct, vectorized=True, n_resamples=999, method="percentile", rng=generator
    )
    assert (est.ci_low, est.ci_high) == (ref.confidence_interval.low, ref.confidence_interval.high)
    assert est.ci_low < est.ci_high


def test_permutation_test_raises_when_the_statistic_is_undefined_on_a_resample() -> None:
    def log_spread(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(np.ptp(a, axis=axis))  # -inf on a resample of one repeated value

    with pytest.raises(DataError, match=r"undefined \(NaN or infinite\) in \d+ of 999 .*finite"):
        permutation_test([1.0, 2.0], [0.0, 3.0], statistic=log_spread, n_resamples=999)


def test_benjamini_hochberg_matches_scipy_and_keeps_the_grid_shape() -> None:
    rng = np.random.default_rng(0)
    grid = rng.uniform(size=(4, 8, 3))
    grid[0, :2] = 1e-6  # a few real effects
    res = benjamini_hochberg(grid, alpha=0.1)
    ref = stats.false_discovery_control(grid.ravel(), method="bh").reshape(grid.shape)
    np.testing.assert_allclose(res.q_values, ref)
    assert res.rejected.shape == grid.shape
    assert res.rejected[0, :2].all()
    assert res.n == 96 and res.n_rejected == int((ref <= 0.1).sum())


def test_benjamini_hochberg_errors() -> None:
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]; 1 do not"):
        benjamini_hochberg([0.1, np.nan])
    with pytest.raises(ConfigError, match="alpha"):
        benjamini_hochberg([0.1], alpha=5.0)
    with pytest.raises(DataError, match="no p-values"):
        benjamini_hochberg([])


@pytest.mark.parametrize("module", [vrp.stats, vrp.probes, vrp.store])
def test_every_public_name_exists_and_is_not_private(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert not name.startswith("_")
        assert getattr(module, name) is not None
