"""Localisation: is an effect held by a late bottleneck or distributed over the network?

Reads a layer profile of effects (e.g. normalised patching scores per layer, or accuracy drops of
ablations) and summarises how concentrated it is and where. The study's contrast: LLaVA's answer
runs through a few late units (late fusion), PaliGemma's and Qwen2-VL's is spread out (early
fusion).

Why the rule is built as it is. Compared models differ in depth (4 layers in a test model, 24 to 40
in real ones), so every threshold is a share of the depth or a share of the mass, never a count of
layers:

- "Few layers" means a fixed fraction of the depth (`top_fraction`, a quarter by default), so the
  number of top layers grows with the model. An absolute share is not evidence of concentration:
  2 of 4 layers hold at least half of any profile, a flat one included. `concentration` therefore
  measures the top layers' share against the share they would hold in a flat profile (chance):
  0 = flat, 1 = all the mass inside those layers. With the default cut-off (0.5), mass spread
  evenly over a block of layers counts as concentrated up to a block of 40% of the depth.
- "Late" means that most of the mass lies in the last `late_fraction` of the layers, not that the
  single largest layer does (one noisy layer decides the latter).
- Normalised entropy is reported but decides nothing: mass spread evenly over a quarter of the
  layers has entropy 0 at depth 4 and 0.6 at depth 32, so one entropy cut means different things
  at different depths.

A point profile has no uncertainty; a sample of profiles (one per prompt pair) gets bootstrap
intervals, and a verdict that those intervals do not support is "undetermined".
"""

import math
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import entropy

from vrp import ConfigError
from vrp.core import TidyRecords

Verdict: TypeAlias = Literal["late bottleneck", "distributed", "intermediate", "undetermined"]
Sign: TypeAlias = Literal["positive", "absolute"]

_RESAMPLES = 2000  # bootstrap resamples: each 2.5% tail of a 95% interval holds 50 of them
_BLOCK = 250  # resamples drawn at a time (bounds memory to _BLOCK x samples counts)


@dataclass(frozen=True, kw_only=True)
class Localisation(TidyRecords):
    """How concentrated a profile of effects is, where its mass sits, and the verdict.

    "Mass" is the mean effect per layer with negative entries set to zero (`sign="positive"`) or
    its absolute value (`sign="absolute"`); shares are shares of the total mass.

    Attributes:
      verdict: "late bottleneck", "distributed", "intermediate" or "undetermined" (rule in
        `localise`).
      reason: one sentence saying which numbers decided the verdict.
      concentration: (top_k_share - k / n) / (1 - k / n): 0 = flat, 1 = all mass in the top `k`.
      concentration_ci: bootstrap interval of `concentration`; None for a single profile.
      late_share: share of the mass in the last `n_late` layers.
      late_share_ci: bootstrap interval of `late_share`; None for a single profile.
      top_k_share: share held by the `k` largest layers.
      k: number of top layers, `top_fraction` of the depth (at least 1, at most n - 1).
      n_late: number of late layers, `late_fraction` of the depth (at least 1, at most n - 1).
      peak: index (layer) of the largest mass.
      peak_share: share of the mass held by the peak.
      entropy: normalised Shannon entropy of the shares (0 = one layer, 1 = flat); descriptive
        only, as it is not comparable across depths.
      negative_share: share of the total |mean effect| in negative entries: dropped from the
        mass under `sign="positive"`, counted under `sign="absolute"`.
      sign: how negative effects were treated.
      n: number of layers.
      n_samples: number of profiles averaged (1 for a single profile).
      confidence: coverage of the intervals; None for a single profile.
    """

    verdict: Verdict
    reason: str
    concentration: float
    concentration_ci: tuple[float, float] | None
    late_share: float
    late_share_ci: tuple[float, float] | None
    top_k_share: float
    k: int
    n_late: int
    peak: int
    peak_share: float
    entropy: float
    negative_share: float
    sign: Sign
    n: int
    n_samples: int
    confidence: float | None

    def to_records(self) -> list[dict[str, Any]]:
        """One row per statistic: value, interval and the profile's verdict, layers and options.

        `ci_low`/`ci_high` hold the bootstrap interval of concentration and late share when the
        input was a sample of profiles, and NaN otherwise. Rows of several profiles (models,
        components) concatenate into one tidy table, e.g.
        `[{"model": m, **row} for m, loc in results.items() for row in loc.to_records()]`.
        """
        nan = (math.nan, math.nan)
        rows = (
            ("concentration", self.concentration, self.concentration_ci or nan),
            ("late_share", self.late_share, self.late_share_ci or nan),
            ("top_k_share", self.top_k_share, nan),
            ("peak_share", self.peak_share, nan),
            ("entropy", self.entropy, nan),
            ("negative_share", self.negative_share, nan),
        )
        common: dict[str, Any] = {"verdict": self.verdict, "n": self.n, "k": self.k}
        common |= {"n_late": self.n_late, "sign": self.sign, "n_samples": self.n_samples}
        return [
            {"statistic": name, "value": value, "ci_low": ci[0], "ci_high": ci[1], **common}
            for name, value, ci in rows
        ]


def localise(
    effects: ArrayLike,
    *,
    sign: Sign = "positive",
    top_fraction: float = 0.25,
    late_fraction: float = 1 / 3,
    concentration: tuple[float, float] = (0.2, 0.5),
    confidence: float = 0.95,
    seed: int = 0,
) -> Localisation:
    """Summarises where a per-layer profile of effects puts its mass, with a verdict.

    The rule, with `k` = `top_fraction` of the `n` layers and `(low, high)` = `concentration`:

    - "late bottleneck": concentration >= `high` (by default the top quarter of the layers holds
      at least 62.5% of the mass, 2.5 times its flat share) and more than half of the mass lies
      in the last `late_fraction` of the layers;
    - "distributed": concentration <= `low` (by default the top quarter holds at most 40%);
    - "intermediate": neither, e.g. an early peak, an early and a late peak, or a concentration
      between the cut-offs;
    - "undetermined": `effects` is a sample of profiles and a bootstrap interval straddles a
      cut-off, so the data allow more than one of the verdicts above.

    Negative effects: patching recovery scores are signed, and a layer whose patch moves the
    output away from the clean answer carries no mass toward the behaviour, so by default
    (`sign="positive"`) negative mean effects count as zero; their size is reported as
    `negative_share`. Pass `sign="absolute"` when the sign is arbitrary (e.g. a distance moved).

    Args:
      effects: one profile (" layer") or a sample of profiles ("sample layer", e.g. per prompt
        pair: `PatchResult.per_row.T`, normalised). A sample is averaged over its rows, and the
        rows are resampled for the intervals (percentile bootstrap, `2000` resamples). Noise
        inflates top-layer shares, in the point value and in the resamples alike, so with few
        pairs a flat profile reads "undetermined" rather than "distributed": add pairs.
      sign: "positive" (default) or "absolute", see above.
      top_fraction: share of the layers that counts as "few": `k` is the nearest whole number of
        layers to `n * top_fraction`, clipped to 1..n-1.
      late_fraction: share of the layers that counts as "late", rounded the same way.
      concentration: `(low, high)` cut-offs on concentration for "distributed" and for a
        bottleneck, with 0 <= low < high <= 1.
      confidence: coverage of the bootstrap intervals (a sample of profiles only).
      seed: seeds the numpy Generator of the bootstrap.

    Returns:
      The statistics, their intervals (for a sample) and the verdict.

    Raises:
      ConfigError: `effects` is not a finite 1-D or 2-D array with at least two layers (and two
        profiles when 2-D), it has no mass (all zero, or no positive mean effect under
        `sign="positive"`), or an option is out of range.
    """
    _check_options(sign, top_fraction, late_fraction, concentration, confidence)
    samples = _as_samples(effects)
    n = samples.shape[1]
    k, n_late = _layer_count(n, top_fraction), _layer_count(n, late_fraction)
    mean = samples.mean(axis=0)
    mass = _mass(mean, sign)
    if mass.sum() <= 0:
        raise ConfigError(_no_mass_message(mean, sign))
    share = mass / mass.sum()
    conc, late = _statistics(mass[None], k, n_late)
    cis = None
    if samples.shape[0] > 1:
        cis = _bootstrap(samples, sign=sign, k=k, n_late=n_late, confidence=confidence, seed=seed)
    verdict, reason = _verdict(float(conc[0]), float(late[0]), cis, concentration, confidence)
    return Localisation(
        verdict=verdict,
        reason=reason,
        concentration=float(conc[0]),
        concentration_ci=None if cis is None else cis[0],
        late_share=float(late[0]),
        late_share_ci=None if cis is None else cis[1],
        top_k_share=float(np.sort(share)[::-1][:k].sum()),
        k=k,
        n_late=n_late,
        peak=int(np.argmax(mass)),
        peak_share=float(share.max()),
        entropy=float(entropy(share) / np.log(n)),
        negative_share=float(np.abs(np.minimum(mean, 0)).sum() / np.abs(mean).sum()),
        sign=sign,
        n=n,
        n_samples=samples.shape[0],
        confidence=None if cis is None else confidence,
    )


def _check_options(
    sign: str,
    top_fraction: float,
    late_fraction: float,
    concentration: tuple[float, float],
    confidence: float,
) -> None:
    if sign not in ("positive", "absolute"):
        raise ConfigError(
            f"sign must be 'positive' (negative effects carry no mass) or 'absolute' (|effect| "
            f"is the mass); got {sign!r}."
        )
    for name, value in (("top_fraction", top_fraction), ("late_fraction", late_fraction)):
        if not 0.0 < value < 1.0:
            raise ConfigError(
                f"{name} is a share of the layers and must lie strictly between 0 and 1 "
                f"(e.g. 0.25 for a quarter); got {value}."
            )
    low, high = concentration
    if not 0.0 <= low < high <= 1.0:
        raise ConfigError(
            f"concentration must be (low, high) cut-offs with 0 <= low < high <= 1, e.g. "
            f"(0.2, 0.5); got {concentration}."
        )
    if not 0.0 < confidence < 1.0:
        raise ConfigError(
            f"confidence must lie strictly between 0 and 1 (0.95 for a 95% CI); got {confidence}."
        )


def _as_samples(effects: ArrayLike) -> np.ndarray:
    """`effects` as a finite float array of shape (sample, layer), or a `ConfigError`."""
    arr = np.asarray(effects, dtype=float)
    if arr.ndim not in (1, 2):
        raise ConfigError(
            f"localise needs one profile (layer) or a sample of profiles (sample x layer); got "
            f"shape {arr.shape}. Average or reshape the other axes first."
        )
    samples = arr[None] if arr.ndim == 1 else arr
    if samples.shape[1] < 2:
        raise ConfigError(
            f"localise needs a profile of at least two layers; got shape {arr.shape}. A 2-D "
            "input is (sample, layer): transpose it if layers are the rows."
        )
    if arr.ndim == 2 and samples.shape[0] < 2:
        raise ConfigError(
            f"a sample of profiles needs at least two rows to bootstrap; got shape {arr.shape}. "
            "Pass a single profile as a 1-D array."
        )
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise ConfigError(
            f"localise got {bad} NaN or infinite effects; drop or impute them first (a clean run "
            "that scores like the corrupted one makes normalised scores infinite)."
        )
    return samples


def _layer_count(n: int, fraction: float) -> int:
    """The nearest whole number of layers to `n * fraction`, clipped to 1..n-1."""
    return min(n - 1, max(1, math.floor(n * fraction + 0.5)))


def _mass(effects: np.ndarray, sign: Sign) -> np.ndarray:
    return np.maximum(effects, 0.0) if sign == "positive" else np.abs(effects)


def _no_mass_message(mean: np.ndarray, sign: Sign) -> str:
    if sign == "absolute" or not (mean < 0).any():
        return "localise got an all-zero profile: there is no effect to localise."
    return (
        f"localise found no positive mean effect (largest {mean.max():.3g}): with "
        "sign='positive', negative effects carry no mass, so there is nothing to localise. "
        "Check the metric's direction, or pass sign='absolute' if the sign is arbitrary."
    )


def _statistics(mass: np.ndarray, k: int, n_late: int) -> tuple[np.ndarray, np.ndarray]:
    """Concentration and late share of each row of `mass` (resample x layer); NaN without mass."""
    total = mass.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows without mass become NaN
        share = mass / total
    top = -np.sort(-share, axis=1)[:, :k].sum(axis=1)
    chance = k / mass.shape[1]
    return (top - chance) / (1 - chance), share[:, -n_late:].sum(axis=1)


def _bootstrap(
    samples: np.ndarray, *, sign: Sign, k: int, n_late: int, confidence: float, seed: int
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile intervals of concentration and late share over rows resampled with
    replacement, and the number of resamples whose mean profile has no mass."""
    rng = np.random.default_rng(seed)
    m = samples.shape[0]
    conc, late = [], []
    for start in range(0, _RESAMPLES, _BLOCK):
        counts = rng.multinomial(m, np.full(m, 1 / m), size=min(_BLOCK, _RESAMPLES - start))
        c, lt = _statistics(_mass(counts @ samples / m, sign), k, n_late)
        conc.append(c)
        late.append(lt)
    c_all, l_all = np.concatenate(conc), np.concatenate(late)
    ends = [(1 - confidence) / 2, (1 + confidence) / 2]
    undefined = int(np.isnan(c_all).sum())
    c_lo, c_hi = np.nanquantile(c_all, ends) if undefined < c_all.size else (math.nan,) * 2
    l_lo, l_hi = np.nanquantile(l_all, ends) if undefined < l_all.size else (math.nan,) * 2
    return (float(c_lo), float(c_hi)), (float(l_lo), float(l_hi)), undefined


def _verdict(
    conc: float,
    late: float,
    cis: tuple[tuple[float, float], tuple[float, float], int] | None,
    cuts: tuple[float, float],
    confidence: float,
) -> tuple[Verdict, str]:
    """Applies the rule to the intervals (a point profile's interval is the point itself)."""
    (c_lo, c_hi), (l_lo, l_hi), undefined = cis or ((conc, conc), (late, late), 0)
    low, high = cuts
    if undefined:
        return "undetermined", (
            f"{undefined} of {_RESAMPLES} bootstrap resamples have no mass: the sample does not "
            "establish an effect to localise."
        )
    concentrated = _three_way(c_lo >= high, c_hi < high)
    is_late = _three_way(l_lo > 0.5, l_hi <= 0.5)
    spread = _three_way(c_hi <= low, c_lo > low)
    # three-valued AND: False if either is False, True if both are True, else None
    bottleneck = False if False in (concentrated, is_late) else concentrated and is_late
    described = _describe(conc, late, cis, confidence)
    if bottleneck is True:
        return "late bottleneck", f"concentrated (>= {high}) and late (> 50%): {described}"
    if spread is True:
        return "distributed", f"spread out (concentration <= {low}): {described}"
    if bottleneck is False and spread is False:
        why = f"concentration between {low} and {high}" if concentrated is False else "not late"
        return "intermediate", f"neither spread out nor a late bottleneck ({why}): {described}"
    return "undetermined", f"an interval straddles a cut-off ({low}, {high}, 50%): {described}"


def _three_way(true: bool, false: bool) -> bool | None:
    """True, False, or None when the interval allows both."""
    return True if true else False if false else None


def _describe(
    conc: float,
    late: float,
    cis: tuple[tuple[float, float], tuple[float, float], int] | None,
    confidence: float,
) -> str:
    if cis is None:
        return f"concentration {conc:.2f}, late share {late:.0%}"
    (c_lo, c_hi), (l_lo, l_hi), _ = cis
    level = f"{100 * confidence:g}%"
    return (
        f"concentration {conc:.2f} [{level} CI {c_lo:.2f}, {c_hi:.2f}], "
        f"late share {late:.0%} [{l_lo:.0%}, {l_hi:.0%}]"
    )
