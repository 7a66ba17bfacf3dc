"""Point-biserial correlation: equals scipy, and its CIs cover the truth at the stated rate."""

import numpy as np
import pytest
from scipy import stats

from vrp.core import ConfigError, DataError, ShapeError
from vrp.stats import Estimate, point_biserial


def _simulate(n_sims: int, n: int, p: float, delta: float, seed: int):
    """x = delta * y + N(0, 1) with y ~ Bernoulli(p): the population point-biserial r is known."""
    rng = np.random.default_rng(seed)
    y = rng.random((n_sims, n)) < p
    x = delta * y + rng.standard_normal((n_sims, n))
    rho = delta * np.sqrt(p * (1 - p)) / np.sqrt(delta**2 * p * (1 - p) + 1)
    return x, y, rho


def test_matches_scipy_and_the_fisher_formula() -> None:
    x, y, _ = _simulate(1, 300, 0.4, 0.7, seed=1)
    est = point_biserial(x[0], y[0])
    ref = stats.pointbiserialr(y[0], x[0])
    assert est.estimate == pytest.approx(ref.statistic, abs=1e-12)
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    half = 1.959963984540054 / np.sqrt(300 - 3)
    z = np.arctanh(ref.statistic)
    assert (est.ci_low, est.ci_high) == pytest.approx((np.tanh(z - half), np.tanh(z + half)))
    assert est.n == 300 and est.confidence == 0.95


def test_fisher_ci_covers_the_true_r_in_95_percent_of_1000_simulations() -> None:
    x, y, rho = _simulate(1000, 200, 0.5, 0.8, seed=0)
    hits = [(e := point_biserial(x[i], y[i])).ci_low <= rho <= e.ci_high for i in range(1000)]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_bootstrap_ci_covers_the_true_r_in_95_percent_of_1000_simulations() -> None:
    # 500 resamples instead of the default 9,999: a resample count that low makes each interval's
    # end points noisier, but that noise is symmetric and averages out over 1,000 simulations, so
    # the coverage rate is still what is tested; the default stays high for single analyses.
    x, y, rho = _simulate(1000, 120, 0.4, 1.0, seed=2)
    hits = [
        (e := point_biserial(x[i], y[i], ci="bootstrap", n_resamples=500, seed=i)).ci_low
        <= rho
        <= e.ci_high
        for i in range(1000)
    ]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_bootstrap_is_seeded_and_close_to_fisher() -> None:
    x, y, _ = _simulate(1, 500, 0.5, 0.6, seed=3)
    a = point_biserial(x[0], y[0], ci="bootstrap", n_resamples=999, seed=7)
    b = point_biserial(x[0], y[0], ci="bootstrap", n_resamples=999, seed=7)
    fisher = point_biserial(x[0], y[0])
    assert a == b
    assert a.ci_low == pytest.approx(fisher.ci_low, abs=0.03)
    assert a.ci_high == pytest.approx(fisher.ci_high, abs=0.03)


def test_bootstrap_with_a_rare_class_raises_instead_of_returning_nan() -> None:
    # 2 positives in 60: about 1 resample in 8 draws no positive, where r is undefined; scipy
    # returned a [nan, nan] interval with only a warning (an error under this test suite).
    x = np.random.default_rng(0).normal(size=60)
    y = np.zeros(60, dtype=int)
    y[:2] = 1
    with pytest.raises(
        DataError,
        match=r"undefined \(NaN or infinite\) in 1,\d{3} of 9,999 bootstrap resamples.*"
        r"rarer class has 2 of 60 samples.*probability 0\.13\. Use ci='fisher'",
    ):
        point_biserial(x, y, ci="bootstrap")
    fisher = point_biserial(x, y)  # the suggested way out works
    assert fisher.ci_low < fisher.estimate < fisher.ci_high


def test_bootstrap_method_names_the_interval() -> None:
    x, y, _ = _simulate(1, 200, 0.5, 0.6, seed=4)
    assert point_biserial(x[0], y[0], ci="bootstrap", n_resamples=999).method.startswith(
        "point-biserial r, BCa bootstrap CI"
    )
    assert "Fisher z CI" in point_biserial(x[0], y[0]).method


def test_result_is_a_frozen_estimate() -> None:
    est = point_biserial([0.1, 0.5, 0.3, 0.9, 0.7], [0, 1, 0, 1, 1])
    assert isinstance(est, Estimate)
    with pytest.raises(AttributeError):
        est.estimate = 0.0  # type: ignore[misc]
    assert "n = 5" in str(est)


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(DataError, match=r"must be binary \(0/1"):
        point_biserial([1.0, 2.0, 3.0, 4.0], [0, 1, 2, 1])
    with pytest.raises(DataError, match="only the class 1"):
        point_biserial([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1])
    with pytest.raises(ShapeError, match="lengths 4 and 5"):
        point_biserial([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1, 1])
    with pytest.raises(ShapeError, match="must be 1-D"):
        point_biserial([[1.0, 2.0], [3.0, 4.0]], [0, 1])
    with pytest.raises(DataError, match="NaN or infinite"):
        point_biserial([1.0, np.nan, 3.0, 4.0], [0, 1, 0, 1])
    with pytest.raises(DataError, match="constant"):
        point_biserial([1.0, 1.0, 1.0, 1.0], [0, 1, 0, 1])
    unchecked = getattr(point_biserial, "__wrapped__", point_biserial)  # past the test-time hook
    with pytest.raises(ConfigError, match="'fisher' or 'bootstrap'"):
        unchecked([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1], ci="delong")
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        point_biserial([1.0, 2.0, 3.0, 4.0], [0, 1, 0, 1], confidence=95.0)
