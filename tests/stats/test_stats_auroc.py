"""AUROC: equals scikit-learn, DeLong equals its textbook form, CIs cover at the stated rate."""

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from vrp.core import ConfigError, ShapeError
from vrp.stats import auroc
from vrp.stats._auroc import delong_variance, newcombe_interval


def _binormal(n_sims: int, n: int, delta: float, prevalence: float, seed: int):
    """Scores N(delta, 1) for positives, N(0, 1) for negatives: AUROC = Phi(delta / sqrt 2)."""
    rng = np.random.default_rng(seed)
    y = rng.random((n_sims, n)) < prevalence
    s = rng.standard_normal((n_sims, n)) + delta * y
    return s, y, stats.norm.cdf(delta / np.sqrt(2))


def _delong_textbook(pos: np.ndarray, neg: np.ndarray) -> float:
    """DeLong et al. (1988) variance from the O(m k) structural components."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return float(np.var(v10, ddof=1) / pos.size + np.var(v01, ddof=1) / neg.size)


def test_estimate_and_p_value_match_sklearn_and_scipy() -> None:
    s, y, _ = _binormal(1, 400, 0.7, 0.3, seed=0)
    s = np.round(s[0], 1)  # ties on purpose
    est = auroc(s, y[0])
    assert est.estimate == pytest.approx(roc_auc_score(y[0], s), abs=1e-12)
    ref = stats.mannwhitneyu(s[y[0]], s[~y[0]], alternative="two-sided")
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    auc, var = delong_variance(s[y[0]], s[~y[0]])
    assert auc == pytest.approx(est.estimate)
    assert var == pytest.approx(_delong_textbook(s[y[0]], s[~y[0]]), rel=1e-10)
    assert est.ci_low < est.estimate < est.ci_high


def test_delong_ci_covers_the_true_auroc_in_95_percent_of_1000_simulations() -> None:
    s, y, truth = _binormal(1000, 150, 1.2, 0.4, seed=0)
    hits = [(e := auroc(s[i], y[i])).ci_low <= truth <= e.ci_high for i in range(1000)]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_bootstrap_ci_covers_the_true_auroc_in_95_percent_of_1000_simulations() -> None:
    # 300 resamples (default 2,000): see the point-biserial coverage test for why that is enough.
    s, y, truth = _binormal(1000, 120, 1.0, 0.5, seed=1)
    hits = [
        (e := auroc(s[i], y[i], ci="bootstrap", n_resamples=300, seed=i)).ci_low
        <= truth
        <= e.ci_high
        for i in range(1000)
    ]
    assert 0.93 <= np.mean(hits) <= 0.97


def _hanley_mcneil(theta: float, m: int, k: int) -> float:
    """Hanley & McNeil (1982) variance of the AUROC under their exponential model."""
    q1, q2 = theta / (2 - theta), 2 * theta**2 / (1 + theta)
    return (theta * (1 - theta) + (m - 1) * (q1 - theta**2) + (k - 1) * (q2 - theta**2)) / (m * k)


EIGHT = np.arange(8.0), np.array([0, 0, 0, 0, 1, 1, 1, 1])  # perfectly separated, 4 + 4


@pytest.mark.parametrize("ci", ["delong", "bootstrap"])
@pytest.mark.parametrize(
    ("scores", "estimate"),
    [(EIGHT[0], 1.0), (-EIGHT[0], 0.0), (np.zeros(8), 0.5)],
    ids=["auroc-1", "auroc-0", "all-tied"],
)
def test_degenerate_data_get_the_newcombe_interval_never_a_point(
    ci: str, scores: np.ndarray, estimate: float
) -> None:
    est = auroc(scores, EIGHT[1], ci=ci)  # warnings are errors here: none may escape either
    assert est.estimate == estimate
    assert "Newcombe score" in est.method
    assert (est.ci_low, est.ci_high) == pytest.approx(newcombe_interval(estimate, 4, 4, 0.95))
    assert est.ci_low <= estimate <= est.ci_high and est.ci_high - est.ci_low > 0.3
    if estimate == 1.0:
        assert est.ci_high == 1.0 and 0.5 < est.ci_low < 0.65  # 8 samples cannot pin AUROC = 1


def test_a_single_positive_gets_the_newcombe_interval() -> None:
    est = auroc([0.1, 0.2, 0.3, 0.4, 0.9], [0, 0, 0, 0, 1])  # DeLong's variance is undefined
    assert "Newcombe score" in est.method and est.ci_low < 0.5 and est.ci_high == 1.0


@pytest.mark.parametrize(("m", "k"), [(4, 4), (12, 12), (30, 30)])
@pytest.mark.parametrize("auc", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_newcombe_interval_solves_the_hanley_mcneil_score_equation(
    auc: float, m: int, k: int
) -> None:
    # With m == k, Newcombe's variance is Hanley-McNeil's itself: each end theta of the interval
    # solves (auc - theta)^2 = z^2 V_HM(theta).
    low, high = newcombe_interval(auc, m, k, 0.95)
    z = stats.norm.ppf(0.975)
    for end in (low, high):
        assert (auc - end) ** 2 == pytest.approx(z**2 * _hanley_mcneil(end, m, k), abs=1e-10)
    assert 0.0 <= low <= auc <= high <= 1.0 and high > low
    flipped = newcombe_interval(1.0 - auc, m, k, 0.95)
    assert flipped == pytest.approx((1.0 - high, 1.0 - low))


def test_small_n_interval_covers_a_high_auroc_in_95_percent_of_1000_simulations() -> None:
    # 6 + 6 samples at AUROC 0.95: about 40% of the samples separate perfectly, where the old
    # zero-width [1, 1] could never cover. DeLong with the Newcombe fallback stays conservative.
    s, y, truth = _binormal(1000, 12, stats.norm.ppf(0.95) * np.sqrt(2), 0.5, seed=4)
    keep = [i for i in range(1000) if 2 <= y[i].sum() <= 10]
    hits = [(e := auroc(s[i], y[i])).ci_low <= truth <= e.ci_high for i in keep]
    assert 0.94 <= np.mean(hits) <= 0.995


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(ShapeError, match="scores and labels"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    unchecked = getattr(auroc, "__wrapped__", auroc)  # past the test-time type-checking hook
    with pytest.raises(ConfigError, match="'delong' or 'bootstrap'"):
        unchecked([0.1, 0.2, 0.3], [0, 1, 1], ci="fisher")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=6, max_size=30),  # few distinct values: many ties
    st.randoms(use_true_random=False),
)
def test_auroc_properties_on_tied_scores(values: list[int], random: Random) -> None:
    labels = [i % 2 for i in range(len(values))]
    random.shuffle(labels)
    s, y = np.array(values, dtype=float), np.array(labels)
    est, flipped = auroc(s, y), auroc(-s, y)
    assert est.estimate + flipped.estimate == pytest.approx(1.0)
    assert 0.0 <= est.ci_low <= est.estimate <= est.ci_high <= 1.0
    assert est.ci_high > est.ci_low  # never a zero-width interval, even when every score ties
    _, var = delong_variance(s[y == 1], s[y == 0])
    assert var == pytest.approx(_delong_textbook(s[y == 1], s[y == 0]), abs=1e-12)
