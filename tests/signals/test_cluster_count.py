"""Cluster count C_k on planted maps whose answer is known, under both definitions."""

import warnings

import numpy as np
import pytest
import torch

from vrp.core import ConfigError, UndefinedSignalWarning
from vrp.signals import Dbscan, MassComponents, SignalError, cluster_count


def _two_blobs() -> torch.Tensor:
    """A 12x12 map with two 3x3 blobs far apart, each with a hot centre, on a faint background.

    Values: 126 background cells of 0.001, 16 blob cells of 1 and 2 centres of 5. The 90th
    percentile falls between sorted cells 128 and 129, both 1, so DBSCAN keeps the 18 blob
    cells. The total mass is 26.126; 30% of it (7.84) is covered by the two centres alone.
    """
    grid = torch.full((12, 12), 0.001)
    grid[1:4, 1:4] = 1.0
    grid[8:11, 7:10] = 1.0
    grid[2, 2] = grid[9, 8] = 5.0
    return grid


def test_two_separated_blobs() -> None:
    grid = _two_blobs()
    assert int(cluster_count(grid, method=Dbscan())) == 2
    # two components hold the top 30% of the mass: C_k = components - 1 = 1
    assert int(cluster_count(grid, method=MassComponents())) == 1
    # covering 60% of the mass takes two whole blobs, still two components
    assert int(cluster_count(grid, method=MassComponents(mass=0.6))) == 1


def test_one_blob_and_an_isolated_cell() -> None:
    grid = torch.full((10, 10), 0.01)
    grid[2:5, 2:5] = 1.0
    grid[8, 8] = 1.0  # isolated: DBSCAN noise (it has no neighbour within 1.5 cells)
    assert int(cluster_count(grid, method=Dbscan())) == 1
    # mass: 10 of 10.9; its top 30% lies inside the blob (raster order breaks the ties)
    assert int(cluster_count(grid, method=MassComponents())) == 0
    # all the hot mass: the blob and the isolated cell are 2 components
    assert int(cluster_count(grid, method=MassComponents(mass=0.9))) == 1


def test_three_blobs_batched() -> None:
    grid = torch.full((3, 16, 16), 0.001)
    grid[:, 0:3, 0:3] = 1.0
    grid[1, 10:13, 0:3] = 1.0
    grid[2, 10:13, 0:3] = 1.0
    grid[2, 5:8, 12:15] = 1.0
    counts = cluster_count(grid, method=Dbscan(percentile=95.0))
    assert counts.dtype == torch.float64 and counts.tolist() == [1, 2, 3]


def test_a_grid_too_small_for_dbscan_is_undefined_not_zero() -> None:
    """The organisms' 4x4 grid keeps 2 cells at the 90th percentile, fewer than min_samples=3:
    C_k would be 0 for every map, so it is NaN with a warning naming grid and parameters."""
    grid = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(0))
    grid[:, 0, 0] = 5.0
    with pytest.warns(UndefinedSignalWarning) as record:
        counts = cluster_count(grid, method=Dbscan())
    assert torch.isnan(counts).all() and counts.shape == (5,)
    message = str(record[0].message)
    assert "4x4 grid" in message and "percentile 90" in message and "min_samples 3" in message
    assert "2 cells" in message and "percentile <= 86.6" in message


@pytest.mark.parametrize(
    ("side", "percentile", "min_samples", "defined"),
    [(4, 90.0, 3, False), (4, 86.6, 3, True), (4, 86.7, 3, False), (4, 90.0, 2, True),
     (5, 90.0, 3, True), (3, 90.0, 3, False), (24, 90.0, 3, True), (16, 99.0, 3, True)],
)  # fmt: skip
def test_definedness_matches_what_numpy_keeps(side, percentile, min_samples, defined) -> None:
    method = Dbscan(percentile=percentile, min_samples=min_samples)
    values = np.random.default_rng(side).random(side * side)
    kept = int((values >= np.percentile(values, percentile)).sum())
    assert method.kept_cells(side * side) == kept
    assert method.defined_on((side, side), warn=False) is defined
    assert (kept >= min_samples) is defined


def test_a_defined_grid_warns_nothing_and_counts() -> None:
    grid = torch.full((5, 5), 0.01)
    grid[0, 0:3] = 1.0  # three hot cells in a row: one cluster at percentile 88
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(cluster_count(grid, method=Dbscan(percentile=88.0))) == 1.0


def test_connectivity_decides_whether_diagonal_cells_touch() -> None:
    grid = torch.full((6, 6), 0.001)
    grid[1, 1] = grid[2, 2] = 1.0
    assert int(cluster_count(grid, method=MassComponents(mass=0.9, connectivity=8))) == 0
    assert int(cluster_count(grid, method=MassComponents(mass=0.9, connectivity=4))) == 1


def test_uniform_map_is_one_cluster_under_both() -> None:
    grid = torch.ones(8, 8)  # every cell ties at the percentile; mass ties go in raster order
    assert int(cluster_count(grid, method=Dbscan())) == 1
    assert int(cluster_count(grid, method=MassComponents())) == 0


def test_dbscan_matches_sklearn_on_random_maps() -> None:
    from sklearn.cluster import DBSCAN

    maps = torch.rand(5, 24, 24) ** 3
    for grid, count in zip(maps, cluster_count(maps, method=Dbscan()), strict=True):
        values = grid.double().numpy()
        cells = np.argwhere(values >= np.percentile(values, 90))
        labels = DBSCAN(eps=1.5, min_samples=3).fit(cells).labels_
        assert int(count) == len(set(labels) - {-1})


def test_bad_parameters_and_maps() -> None:
    with pytest.raises(ConfigError, match=r"percentile must lie in \[0, 100\], but got 120.0"):
        Dbscan(percentile=120.0)
    with pytest.raises(ConfigError, match="eps must be > 0"):
        Dbscan(eps=0.0)
    with pytest.raises(ConfigError, match=r"mass must lie in \(0, 1\], but got 0"):
        MassComponents(mass=0.0)
    with pytest.raises(SignalError, match="positive total mass"):
        cluster_count(torch.zeros(4, 4), method=Dbscan())


@pytest.mark.usefixtures("without_runtime_checks")
def test_connectivity_is_checked_without_beartype() -> None:
    with pytest.raises(ConfigError, match="connectivity must be 4 or 8, but got 6"):
        MassComponents(connectivity=6)  # type: ignore[arg-type]
