"""Localisation: is an effect held by a late bottleneck or distributed over the network?

Reads a layer profile of effects (e.g. normalised patching scores per layer, or accuracy drops of
ablations) and summarises how concentrated it is and where. The study's contrast: LLaVA's answer
runs through a few late units (late fusion), PaliGemma's and Qwen2-VL's is spread out (early
fusion).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import entropy

from vrp import ConfigError


@dataclass(frozen=True, kw_only=True)
class Localisation:
    """How concentrated a profile of effects is, and where its mass sits.

    Attributes:
      peak: index (layer) of the largest |effect|.
      peak_share: share of the total |effect| held by the peak.
      top_k_share: share held by the `k` largest entries.
      entropy: normalised Shannon entropy of the |effect| distribution (0 = one entry, 1 = flat).
      late_share: share of the |effect| in the last `late_fraction` of the layers.
      verdict: "late bottleneck", "distributed" or "intermediate" (thresholds in `localise`).
      n: number of entries.
    """

    peak: int
    peak_share: float
    top_k_share: float
    entropy: float
    late_share: float
    verdict: Literal["late bottleneck", "distributed", "intermediate"]
    n: int


def localise(
    effects: Sequence[float] | np.ndarray,
    *,
    k: int = 2,
    late_fraction: float = 1 / 3,
    bottleneck_share: float = 0.5,
    distributed_entropy: float = 0.8,
) -> Localisation:
    """Summarises a per-layer profile of effects.

    A profile is a "late bottleneck" when its top-`k` entries hold at least `bottleneck_share` of
    the mass and the peak lies in the last `late_fraction` of the layers; "distributed" when its
    normalised entropy is at least `distributed_entropy`; "intermediate" otherwise.

    Raises:
      ConfigError: fewer than two entries, no effect at all, or non-finite values.
    """
    mass = np.abs(np.asarray(effects, dtype=float))
    if mass.ndim != 1 or mass.size < 2 or not np.isfinite(mass).all():
        raise ConfigError(
            f"localise needs a finite 1-D profile of at least two layers, got shape {mass.shape}."
        )
    total = mass.sum()
    if total == 0:
        raise ConfigError("localise got an all-zero profile: there is no effect to localise.")
    share = mass / total
    peak = int(np.argmax(mass))
    late_start = int(np.floor(mass.size * (1 - late_fraction)))
    top_k = float(np.sort(share)[::-1][:k].sum())
    flatness = float(entropy(share) / np.log(mass.size))
    late = peak >= late_start
    if top_k >= bottleneck_share and late:
        verdict: Literal["late bottleneck", "distributed", "intermediate"] = "late bottleneck"
    elif flatness >= distributed_entropy:
        verdict = "distributed"
    else:
        verdict = "intermediate"
    return Localisation(
        peak=peak,
        peak_share=float(share[peak]),
        top_k_share=top_k,
        entropy=flatness,
        late_share=float(share[late_start:].sum()),
        verdict=verdict,
        n=int(mass.size),
    )
