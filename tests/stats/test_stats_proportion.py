"""`proportion`: scipy's Wilson score interval in an `Estimate`, with checked inputs."""

import math

import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from vrp.core import ConfigError, DataError
from vrp.stats import Estimate, proportion


@settings(deadline=None, max_examples=60)
@given(
    data=st.data(),
    n=st.integers(1, 500),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_interval_is_scipys_wilson_interval(data: st.DataObject, n: int, confidence: float) -> None:
    k = data.draw(st.integers(0, n))
    est = proportion(k, n, confidence=confidence)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert (est.ci_low, est.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-15)
    assert est.estimate == k / n and est.n == n and est.confidence == confidence
    assert 0.0 <= est.ci_low <= est.estimate <= est.ci_high <= 1.0


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # Newcombe (1998), Table I, method 3 (Wilson score, no continuity correction)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
    ],
)
def test_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    est = proportion(k, n)
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-4)


def test_result_is_an_estimate_without_a_test() -> None:
    est = proportion(3, 4)
    assert isinstance(est, Estimate)
    assert est.method == "wilson" and math.isnan(est.p_value)
    assert proportion(4, 4).ci_high == 1.0 and proportion(0, 4).ci_low == 0.0
    assert "p = n/a, n = 4 (wilson)" in str(est)


def test_no_trials_give_nan_and_the_whole_interval() -> None:
    est = proportion(0, 0)
    assert math.isnan(est.estimate) and (est.ci_low, est.ci_high) == (0.0, 1.0) and est.n == 0


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(DataError, match=r"0 <= successes <= n; got successes=5, n=4"):
        proportion(5, 4)
    with pytest.raises(DataError, match=r"got successes=-1, n=4"):
        proportion(-1, 4)
    with pytest.raises(DataError, match=r"got successes=0, n=-2"):
        proportion(0, -2)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        proportion(1, 4, confidence=95.0)
