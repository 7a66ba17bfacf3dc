"""Cluster count C_k of an attention map on the patch grid, under the two definitions in use.

`Dbscan` clusters the grid coordinates of the hottest cells (at or above a percentile) with DBSCAN.
`MassComponents` takes the fewest cells that hold a given share of the attention mass and counts
their connected components, minus one (so one focused blob scores 0). They answer different
questions: DBSCAN looks at where the hottest cells lie whatever their mass, the components at where
the bulk of the mass lies however many cells it takes. Each map is clustered on its own, on the CPU.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Int
from scipy import ndimage
from sklearn.cluster import DBSCAN
from torch import Tensor

from vrp.core import ConfigError

from ._checks import check_distribution
from ._types import GridMaps


@dataclass(frozen=True, kw_only=True)
class Dbscan:
    """C_k = DBSCAN clusters (noise excluded) among the cells at or above a percentile.

    On the integer grid, the default eps = 1.5 makes the 8 surrounding cells neighbours (the
    diagonal is sqrt(2) < 1.5), and min_samples = 3 counts the cell itself, as sklearn does.
    The percentile is numpy's (linear interpolation). "At or above" keeps every cell that ties
    with it: on a map whose cells are mostly equal (a uniform map, or one hot cell on an exactly
    zero background) all of them are kept and form one cluster. Softmax attention has no exact
    zeros, but half-precision underflow can make some.
    """

    percentile: float = 90.0  # cells with value >= this percentile of the map are kept
    eps: float = 1.5  # DBSCAN neighbourhood radius, in grid cells
    min_samples: int = 3  # DBSCAN core-point size; fewer kept cells than this gives C_k = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ConfigError(f"percentile must lie in [0, 100], but got {self.percentile}.")
        if not self.eps > 0.0:
            raise ConfigError(f"eps must be > 0 grid cells, but got {self.eps}.")
        if self.min_samples < 1:
            raise ConfigError(f"min_samples must be >= 1, but got {self.min_samples}.")


@dataclass(frozen=True, kw_only=True)
class MassComponents:
    """C_k = connected components of the cells holding the top `mass` share of attention, minus 1.

    Cells are taken hottest first until their mass reaches ``mass`` of the total (the cell that
    crosses the line is included); ties between equal cells go to the earlier cell in raster
    order, so the selection is deterministic.
    """

    mass: float = 0.3  # share of the total attention mass to cover, in (0, 1]
    connectivity: Literal[4, 8] = 8  # 8: diagonal cells touch (matches Dbscan's eps = 1.5)

    def __post_init__(self) -> None:
        if not 0.0 < self.mass <= 1.0:
            raise ConfigError(f"mass must lie in (0, 1], but got {self.mass}.")
        if self.connectivity not in (4, 8):
            raise ConfigError(f"connectivity must be 4 or 8, but got {self.connectivity}.")


ClusterMethod = Dbscan | MassComponents


def cluster_count(maps: GridMaps, *, method: ClusterMethod) -> Int[Tensor, "*batch"]:
    """Counts the attention clusters C_k of each map.

    Args:
      maps: attention maps on the patch grid (raw mass is fine: only the ranking of cells and
        their shares of the total matter).
      method: `Dbscan()` or `MassComponents()`, with their parameters.

    Returns:
      C_k per map, as int64.

    Raises:
      SignalError: a map is negative somewhere, not finite, or sums to 0.
    """
    grids = maps.detach().to(torch.float64).cpu().numpy()
    flat = grids.reshape(-1, *grids.shape[-2:])
    check_distribution(torch.from_numpy(flat.reshape(flat.shape[0], -1)), "maps")
    if isinstance(method, Dbscan):
        counts = [_dbscan_count(grid, method) for grid in flat]
    else:
        counts = [_component_count(grid, method) for grid in flat]
    return torch.tensor(counts, dtype=torch.int64).reshape(grids.shape[:-2])


def _dbscan_count(grid: np.ndarray, method: Dbscan) -> int:
    """C_k of one map under the DBSCAN definition."""
    threshold = np.percentile(grid, method.percentile)
    cells = np.argwhere(grid >= threshold)
    if len(cells) < method.min_samples:
        return 0
    labels = DBSCAN(eps=method.eps, min_samples=method.min_samples).fit(cells).labels_
    return len(set(labels.tolist()) - {-1})


def _component_count(grid: np.ndarray, method: MassComponents) -> int:
    """C_k of one map under the connected-components definition."""
    values = grid.ravel()
    order = np.argsort(-values, kind="stable")
    covered = np.cumsum(values[order])
    # the first position whose running mass reaches the target; rounding may leave the last short
    n_keep = min(int(np.searchsorted(covered, method.mass * values.sum())) + 1, len(values))
    keep = np.zeros(len(values), dtype=bool)
    keep[order[:n_keep]] = True
    structure = ndimage.generate_binary_structure(2, 2 if method.connectivity == 8 else 1)
    _, n_components = ndimage.label(keep.reshape(grid.shape), structure=structure)
    return int(n_components) - 1
