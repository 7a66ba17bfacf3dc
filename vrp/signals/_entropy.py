"""Spatial entropy of attention maps, and how it evolves across layers.

H_s = -sum M_ij log(M_ij + eps) over the L1-normalised map, in nats, also divided by log S (S = the
number of cells) so that maps on different grids compare: 0 for a one-hot map, 1 for a uniform one.
The computation runs in float64: the maps are small and the differences between layers are.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from vrp.core import ConfigError, ShapeError

from ._checks import check_distribution, largest_step, layer_labels
from ._types import GridMaps, LayerValues


@dataclass(frozen=True, kw_only=True)
class SpatialEntropy:
    """Spatial entropy of a stack of attention maps."""

    nats: Float[Tensor, "*batch"]  # H_s in nats, in [0, log S]
    normalised: Float[Tensor, "*batch"]  # H_s / log S, in [0, 1]
    n_cells: int  # S, the number of grid cells


@dataclass(frozen=True, kw_only=True)
class EntropyEvolution:
    """Layer-wise change of the spatial entropy, with the early-locking and late-diffusion reads."""

    entropy: LayerValues  # H_s(l), as given
    delta: Float[Tensor, "*batch layer-1"]  # delta[..., i] = H_s(layers[i + 1]) - H_s(layers[i])
    early_locking_layer: Int[Tensor, "*batch"]  # layer index of the largest drop (see docstring)
    largest_drop: Float[Tensor, "*batch"]  # H_s(l - 1) - H_s(l) there; <= 0 when H_s never drops
    late_rise: Float[Tensor, "*batch"]  # H_s(last) - H_s(last - late_window)
    late_diffusion: Bool[Tensor, "*batch"]  # late_rise > threshold
    layers: tuple[int, ...]  # the layer index of each position along the layer axis
    late_window: int  # number of final layer-to-layer steps summed into late_rise
    threshold: float  # the late_rise a map must exceed to count as diffusing


def spatial_entropy(maps: GridMaps, *, eps: float = 1e-9) -> SpatialEntropy:
    """Computes the spatial entropy of each attention map over its grid cells.

    Args:
      maps: attention maps on the patch grid; each is L1-normalised here, so raw attention mass
        (which sums to less than 1) is fine.
      eps: the constant inside the log, ``log(M_ij + eps)``; 1e-9 as in the study.

    Returns:
      The entropy in nats and normalised by log S, one per map. Nats are clamped at 0: with
      ``eps > 0`` a one-hot map would otherwise give ``-log(1 + eps)``, a tiny negative number.

    Raises:
      ShapeError: the grid has fewer than 2 cells (log S would be 0).
      SignalError: a map is negative somewhere, not finite, or sums to 0.
    """
    flat = maps.flatten(-2).to(torch.float64)
    n_cells = flat.shape[-1]
    if n_cells < 2:
        raise ShapeError(
            f"spatial entropy needs a grid of at least 2 cells, but the maps have {n_cells}."
        )
    check_distribution(flat, "maps")
    p = flat / flat.sum(dim=-1, keepdim=True)
    nats = (-(p * torch.log(p + eps)).sum(dim=-1)).clamp_min(0.0)
    return SpatialEntropy(nats=nats, normalised=nats / math.log(n_cells), n_cells=n_cells)


def entropy_evolution(
    entropy: LayerValues,
    *,
    layers: Sequence[int] | None = None,
    late_window: int = 3,
    threshold: float = 0.0,
) -> EntropyEvolution:
    """Reads early locking and late diffusion off the per-layer spatial entropy.

    dH_s(l) = H_s(l) - H_s(l - 1). The early-locking layer is the layer `l` whose step is the
    most negative (the entropy drops most on arriving at `l`); ties go to the earliest layer. The
    late rise is the sum of the last `late_window` steps, H_s(last) - H_s(last - late_window), and
    late diffusion flags a rise above `threshold`.

    Args:
      entropy: H_s per layer (nats or normalised: the reads are the same up to the factor log S).
      layers: the layer index of each position along the layer axis; None means 0, 1, 2, ...
      late_window: how many final layer-to-layer steps make up "the last layers" (default 3).
      threshold: the late rise above which a sample counts as diffusing (default 0: any rise).

    Returns:
      The steps, the early-locking layer and drop, the late rise and flag.

    Raises:
      ShapeError: fewer than 2 layers, or `layers` of the wrong length.
      ConfigError: `late_window` outside ``1 .. layer - 1``.
    """
    n_layer = entropy.shape[-1]
    if n_layer < 2:
        raise ShapeError(f"entropy evolution needs at least 2 layers, but got {n_layer}.")
    labels = layer_labels(n_layer, layers)
    if not 1 <= late_window <= n_layer - 1:
        raise ConfigError(
            f"late_window must lie in 1..{n_layer - 1} (the number of layer-to-layer steps), "
            f"but got {late_window}."
        )
    position, drop = largest_step(entropy, sign=-1)
    late_rise = entropy[..., -1] - entropy[..., -1 - late_window]
    return EntropyEvolution(
        entropy=entropy,
        delta=torch.diff(entropy, dim=-1),
        early_locking_layer=torch.tensor(labels, device=entropy.device)[position],
        largest_drop=drop,
        late_rise=late_rise,
        late_diffusion=late_rise > threshold,
        layers=labels,
        late_window=late_window,
        threshold=threshold,
    )
