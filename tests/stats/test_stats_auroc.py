"""AUROC: equals scikit-learn, DeLong equals its textbook form, CIs cover at the stated rate."""

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from vrp.core import ConfigError, ShapeError
from vrp.stats import auroc
from vrp.stats._auroc import delong_variance


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


def test_perfect_separation_gives_auroc_one_and_a_closed_interval() -> None:
    est = auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert (est.estimate, est.ci_low, est.ci_high) == (1.0, 1.0, 1.0)


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
    _, var = delong_variance(s[y == 1], s[y == 0])
    assert var == pytest.approx(_delong_textbook(s[y == 1], s[y == 0]), abs=1e-12)
