"""Cluster count C_k of an attention map on the patch grid, under the two definitions in use.

`Dbscan` clusters the grid coordinates of the hottest cells (at or above a percentile) with DBSCAN.
`MassComponents` takes the fewest cells that hold a given share of the attention mass and counts
their connected components, minus one (so one focused blob scores 0). They answer different
questions: DBSCAN looks at where the hottest cells lie whatever their mass, the components at where
the bulk of the mass lies however many cells it takes. Each map is clustered on its own, on the CPU.
"""

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from scipy import ndimage
from sklearn.cluster import DBSCAN
from torch import Tensor

from vrp.core import ConfigError, UndefinedSignalWarning

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
    min_samples: int = 3  # DBSCAN core-point size; see `defined_on` for grids too small for it

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise ConfigError(f"percentile must lie in [0, 100], but got {self.percentile}.")
        if not self.eps > 0.0:
            raise ConfigError(f"eps must be > 0 grid cells, but got {self.eps}.")
        if self.min_samples < 1:
            raise ConfigError(f"min_samples must be >= 1, but got {self.min_samples}.")

    def kept_cells(self, n_cells: int) -> int:
        """How many cells of a map with `n_cells` distinct values sit at or above the percentile
        (numpy's linear interpolation puts it at sorted position ``percentile/100 * (n - 1)``)."""
        return n_cells - math.ceil(self.percentile / 100 * (n_cells - 1) - 1e-9)

    def defined_on(self, grid: tuple[int, ...], *, warn: bool = True) -> bool:
        """Whether C_k can be other than 0 on a `grid` of patches; if not, warns (by default).

        When the cells kept (`kept_cells`) are fewer than `min_samples`, DBSCAN finds no core
        point and every map scores 0 by construction (unless cells tie): the statistic is
        undefined there, not zero. The 4x4 grids of the model organisms keep 2 of 16 cells at
        the 90th percentile; LLaVA-1.5's 24x24 keeps 58.
        """
        rows, cols = (int(n) for n in grid)
        kept = self.kept_cells(rows * cols)
        if kept >= self.min_samples:
            return True
        if warn:
            most = max(
                0, math.floor(1000 * (rows * cols - self.min_samples) / max(rows * cols - 1, 1))
            )
            warnings.warn(
                f"C_k (DBSCAN, percentile {self.percentile:g}, eps {self.eps:g}, min_samples "
                f"{self.min_samples}) is undefined on a {rows}x{cols} grid: {kept} cells sit at or "
                f"above the percentile, fewer than min_samples, so every map would score 0. "
                f"Reported as NaN. For a defined count use percentile <= {most / 10:.1f} or "
                f"min_samples <= {max(kept, 1)}, or the MassComponents definition.",
                UndefinedSignalWarning,
                stacklevel=3,
            )
        return False


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


def cluster_count(maps: GridMaps, *, method: ClusterMethod) -> Float[Tensor, "*batch"]:
    """Counts the attention clusters C_k of each map.

    Args:
      maps: attention maps on the patch grid (raw mass is fine: only the ranking of cells and
        their shares of the total matter).
      method: `Dbscan()` or `MassComponents()`, with their parameters.

    Returns:
      C_k per map, as float64: whole numbers, or NaN for every map when the definition cannot
      hold on this grid (see `Dbscan.kept_cells`), with an `UndefinedSignalWarning`.

    Raises:
      SignalError: a map is negative somewhere, not finite, or sums to 0.
    """
    grids = maps.detach().to(torch.float64).cpu().numpy()
    flat = grids.reshape(-1, *grids.shape[-2:])
    check_distribution(torch.from_numpy(flat.reshape(flat.shape[0], -1)), "maps")
    if isinstance(method, Dbscan):
        if not method.defined_on(grids.shape[-2:]):
            counts = [float("nan")] * len(flat)
        else:
            counts = [float(_dbscan_count(grid, method)) for grid in flat]
    else:
        counts = [float(_component_count(grid, method)) for grid in flat]
    return torch.tensor(counts, dtype=torch.float64).reshape(grids.shape[:-2])


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
