"""`localise` on planted profiles: the same shape gets the same verdict at depth 4, 12 and 32.

Profiles are functions of relative depth (layer centres at (i + 0.5) / n), so a deeper model samples
the same shape more finely: a narrow bump at 0.9 is the last layer at depth 4 and a few late layers
at depth 32.
"""

import math

import numpy as np
import pytest
from scipy.stats import entropy

from circuits import localise
from vrp import ConfigError

DEPTHS = (4, 12, 32)


def _depth(n: int) -> np.ndarray:
    return (np.arange(n) + 0.5) / n


def _bump(n: int, centre: float) -> np.ndarray:
    return np.exp(-0.5 * ((_depth(n) - centre) / 0.05) ** 2)


def flat(n: int) -> np.ndarray:
    return np.r_[np.ones(n - 1), 1.01]  # the issue's [1, 1, 1, 1.01], at every depth


def late_peak(n: int) -> np.ndarray:
    return 0.05 + _bump(n, 0.9)


def early_peak(n: int) -> np.ndarray:
    return 0.05 + _bump(n, 0.1)


def two_peaks(n: int) -> np.ndarray:
    return 0.05 + _bump(n, 0.1) + _bump(n, 0.9)


def late_peak_early_dip(n: int) -> np.ndarray:
    """A late peak and a larger early negative effect (patching there hurts the clean answer)."""
    return 0.05 + _bump(n, 0.9) - 1.5 * _bump(n, 0.1)


PLANTED = [
    (flat, "positive", "distributed"),
    (late_peak, "positive", "late bottleneck"),
    (early_peak, "positive", "intermediate"),
    (two_peaks, "positive", "intermediate"),
    (late_peak_early_dip, "positive", "late bottleneck"),
    (late_peak_early_dip, "absolute", "intermediate"),
]


@pytest.mark.parametrize("n", DEPTHS)
@pytest.mark.parametrize(
    ("profile", "sign", "verdict"), PLANTED, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_planted_profile_gets_the_same_verdict_at_every_depth(profile, sign, verdict, n) -> None:
    result = localise(profile(n), sign=sign)
    assert result.verdict == verdict, result.reason
    assert result.n == n and result.n_samples == 1
    assert result.concentration_ci is None and result.late_share_ci is None


def test_the_reported_flat_profile_is_distributed() -> None:
    result = localise([1, 1, 1, 1.01])
    assert result.verdict == "distributed"
    assert result.entropy == pytest.approx(1.0, abs=1e-4)
    assert result.concentration == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize(("n", "k", "n_late"), [(2, 1, 1), (4, 1, 1), (12, 3, 4), (32, 8, 11)])
def test_top_and_late_layers_scale_with_depth(n: int, k: int, n_late: int) -> None:
    result = localise(flat(n))
    assert (result.k, result.n_late) == (k, n_late)


@pytest.mark.parametrize("n", DEPTHS)
def test_concentration_is_zero_when_flat_and_one_in_a_single_layer(n: int) -> None:
    assert localise(np.ones(n)).concentration == pytest.approx(0.0, abs=1e-12)
    single = localise(np.eye(n)[n - 1])
    assert single.concentration == pytest.approx(1.0)
    assert (single.peak, single.peak_share, single.late_share) == (n - 1, 1.0, 1.0)


def test_positive_sign_drops_negative_effects_and_reports_them() -> None:
    effects = [-3.0, 0.0, 0.0, 1.0]
    positive = localise(effects)
    assert positive.verdict == "late bottleneck" and positive.peak == 3
    assert positive.negative_share == pytest.approx(0.75)
    absolute = localise(effects, sign="absolute")
    assert absolute.peak == 0 and absolute.late_share == pytest.approx(0.25)
    assert absolute.verdict == "intermediate" and absolute.negative_share == pytest.approx(0.75)


def test_statistics_of_a_small_profile() -> None:
    late = localise([0.01, 0.02, 0.0, 0.05, 0.1, 0.9])  # k = 2 of 6 layers, chance 1/3
    assert late.verdict == "late bottleneck" and late.peak == 5 and late.k == 2
    assert late.top_k_share == pytest.approx(1.0 / 1.08)
    assert late.concentration == pytest.approx((1.0 / 1.08 - 1 / 3) / (2 / 3))
    profile = np.array([0.1, 0.3, 0.2, 0.4])
    expected = entropy(profile / profile.sum()) / np.log(4)
    assert localise(profile).entropy == pytest.approx(expected)
    early = localise([0.9, 0.05, 0.05, 0.0, 0.0, 0.0])
    assert early.verdict == "intermediate" and early.late_share == pytest.approx(0.0)
    assert "not late" in early.reason


def test_thresholds_are_options() -> None:
    two = two_peaks(4)  # concentration 0.30: intermediate by default
    assert localise(two).verdict == "intermediate"
    assert localise(two, concentration=(0.35, 0.6)).verdict == "distributed"
    early = localise(early_peak(12), late_fraction=0.95)  # "late" now covers nearly every layer
    assert early.n_late == 11 and early.verdict == "late bottleneck"


# ----- samples of profiles: bootstrap intervals and "undetermined" --------------------------------
def _noisy(profile: np.ndarray, pairs: int, sd: float) -> np.ndarray:
    return profile + np.random.default_rng(1).normal(0.0, sd, (pairs, profile.size))


def test_a_noisy_small_sample_is_undetermined() -> None:
    samples = _noisy(late_peak(4), pairs=10, sd=1.0)
    point = localise(samples.mean(axis=0))
    assert point.verdict == "late bottleneck"  # the mean alone would claim a bottleneck
    result = localise(samples)
    assert result.verdict == "undetermined", result.reason
    assert result.concentration == pytest.approx(point.concentration)
    low, high = result.concentration_ci or (math.nan, math.nan)
    assert low < 0.5 <= high
    assert "straddles" in result.reason and "95% CI" in result.reason
    assert result.n_samples == 10 and result.confidence == 0.95


@pytest.mark.parametrize("n", DEPTHS)
@pytest.mark.parametrize(
    ("profile", "verdict"),
    [(late_peak, "late bottleneck"), (flat, "distributed"), (early_peak, "intermediate")],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_a_large_sample_is_determined(profile, verdict: str, n: int) -> None:
    result = localise(_noisy(profile(n), pairs=200, sd=0.3))
    assert result.verdict == verdict, result.reason
    low, high = result.concentration_ci or (math.nan, math.nan)
    assert high - low < 0.2


def test_intervals_are_reproducible_and_follow_the_seed() -> None:
    samples = _noisy(late_peak(12), pairs=20, sd=0.5)
    first, again = localise(samples, seed=3), localise(samples, seed=3)
    assert first.concentration_ci == again.concentration_ci
    assert first.late_share_ci == again.late_share_ci
    assert localise(samples, seed=4).concentration_ci != first.concentration_ci
    wider = localise(samples, seed=3, confidence=0.99).concentration_ci
    assert wider is not None and first.concentration_ci is not None
    assert wider[0] <= first.concentration_ci[0] and wider[1] >= first.concentration_ci[1]


def test_resamples_without_mass_leave_the_verdict_undetermined() -> None:
    samples = np.array([[0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, -1.0]])  # mean: a late bottleneck
    assert localise(samples.mean(axis=0)).verdict == "late bottleneck"
    result = localise(samples)
    assert result.verdict == "undetermined"
    assert "bootstrap resamples have no mass" in result.reason


# ----- tidy rows ----------------------------------------------------------------------------------
def test_to_records_gives_one_row_per_statistic() -> None:
    single = localise(late_peak(12)).to_records()
    names = "concentration late_share top_k_share peak_share entropy negative_share".split()
    assert [r["statistic"] for r in single] == names
    assert all(math.isnan(r["ci_low"]) and math.isnan(r["ci_high"]) for r in single)
    assert {r["verdict"] for r in single} == {"late bottleneck"}
    assert single[0]["value"] == localise(late_peak(12)).concentration and single[0]["n"] == 12
    sample = localise(_noisy(late_peak(12), pairs=200, sd=0.3))
    row = sample.to_records()[1]
    assert (row["ci_low"], row["ci_high"]) == sample.late_share_ci and row["n_samples"] == 200


# ----- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("effects", "options", "message"),
    [
        ([1.0], {}, r"at least two layers; got shape \(1,\)"),
        (np.ones((3, 1)), {}, r"at least two layers.*transpose it"),
        (np.ones((2, 2, 2)), {}, r"sample x layer\); got shape \(2, 2, 2\)"),
        (np.ones((1, 4)), {}, r"at least two rows to bootstrap.*1-D array"),
        ([1.0, math.nan, math.inf], {}, r"got 2 NaN or infinite effects"),
        ([0.0, 0.0], {}, r"all-zero profile"),
        ([0.0, 0.0], {"sign": "absolute"}, r"all-zero profile"),
        ([-1.0, -0.5, 0.0], {}, r"no positive mean effect \(largest 0\).*sign='absolute'"),
        ([1.0, 2.0], {"sign": "signed"}, r"sign must be 'positive'.*got 'signed'"),
        ([1.0, 2.0], {"top_fraction": 1.0}, r"top_fraction .* between 0 and 1.*got 1.0"),
        ([1.0, 2.0], {"late_fraction": 0}, r"late_fraction .* between 0 and 1.*got 0"),
        ([1.0, 2.0], {"concentration": (0.5, 0.2)}, r"0 <= low < high <= 1.*got \(0.5, 0.2\)"),
        ([1.0, 2.0], {"concentration": (0.2, 1.5)}, r"0 <= low < high <= 1"),
        ([1.0, 2.0], {"confidence": 95}, r"confidence must lie strictly between 0 and 1"),
    ],
)
def test_bad_input_raises_config_error(effects, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        localise(effects, **options)
