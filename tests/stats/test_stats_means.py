"""`mean_estimate` and `ratio_of_means` against scipy on known data, and the case they exist for:
near-tie units that dominate a mean of per-unit ratios."""

import numpy as np
import pytest
from scipy import stats

from vrp.core import DataError, ShapeError
from vrp.stats import mean_estimate, ratio_of_means


def test_mean_estimate_is_scipys_bootstrap_of_the_unit_means() -> None:
    x = np.random.default_rng(0).normal(0.3, 1.0, size=60)
    est = mean_estimate(x, n_resamples=999, seed=4)
    ref = stats.bootstrap((x,), np.mean, method="BCa", n_resamples=999,
                          rng=np.random.default_rng(4))  # fmt: skip
    assert est.estimate == pytest.approx(x.mean())
    assert (est.ci_low, est.ci_high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high)
    )
    assert est.n == 60 and np.isnan(est.p_value)


def test_mean_of_repeated_draws_is_not_pseudo_replicated() -> None:
    """10 questions x 50 draws: the interval is that of 10 units, wider than a binomial interval
    over 500 pooled answers."""
    rng = np.random.default_rng(1)
    per_question = rng.uniform(0.2, 0.9, size=10)
    draws = rng.random((50, 10)) < per_question
    est = mean_estimate(draws.mean(axis=0), seed=0)
    pooled = stats.binomtest(int(draws.sum()), draws.size).proportion_ci(method="wilson")
    assert est.n == 10
    assert est.ci_high - est.ci_low > 1.5 * (pooled.high - pooled.low)


def test_ratio_of_means_against_scipy() -> None:
    rng = np.random.default_rng(2)
    y = rng.uniform(0.5, 3.0, size=40)
    x = 0.6 * y + rng.normal(0, 0.2, size=40)
    est = ratio_of_means(x, y, n_resamples=999, seed=7)
    assert est.estimate == pytest.approx(x.sum() / y.sum())
    generator = np.random.default_rng(7)
    perm = stats.permutation_test((x, np.zeros(40)), lambda a, b, axis: a.mean(axis) - b.mean(axis),
                                  permutation_type="samples", vectorized=True, n_resamples=999,
                                  rng=generator)  # fmt: skip
    ref = stats.bootstrap((x, y), lambda a, b, axis: a.mean(axis) / b.mean(axis), paired=True,
                          vectorized=True, method="BCa", n_resamples=999, rng=generator)  # fmt: skip
    assert est.p_value == pytest.approx(perm.pvalue)
    assert (est.ci_low, est.ci_high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high)
    )
    assert est.ci_low < 0.6 < est.ci_high


def test_a_near_tie_does_not_dominate_the_ratio_of_means() -> None:
    """Planted: every pair restores 50% of its gap but one near tie (gap 1e-3) overshoots by a
    margin of 0.05. Its per-pair ratio is 50; the mean of ratios is far off, the pooled one not."""
    gap = np.array([1.0, 2.0, 1.5, 0.8, 1.2, 1e-3])
    restored = 0.5 * gap
    restored[-1] = 0.05
    assert np.mean(restored / gap) > 8
    assert ratio_of_means(restored, gap, seed=0).estimate == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: mean_estimate([1.0]), DataError, "at least 2 units; got 1"),
        (lambda: mean_estimate([[1.0, 2.0]]), ShapeError, "must be 1-D"),
        (lambda: mean_estimate([1.0, np.nan]), DataError, "1 NaN or infinite"),
        (lambda: ratio_of_means([1, 2], [1, 2, 3]), ShapeError, "numerator and denominator"),
        (lambda: ratio_of_means([1, 2], [-1, -2]), DataError, "positive mean; got mean -1.5"),
    ],
)
def test_bad_input_messages(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
