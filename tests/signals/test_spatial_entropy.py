"""Spatial entropy against hand-computed values and scipy, and its evolution over layers."""

import math

import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from vrp.core import ConfigError, ShapeError
from vrp.signals import SignalError, entropy_evolution, spatial_entropy


def test_uniform_map_has_entropy_log_s() -> None:
    result = spatial_entropy(torch.full((24, 24), 0.3))
    assert result.n_cells == 576
    assert float(result.nats) == pytest.approx(math.log(576), abs=1e-6)
    assert float(result.normalised) == pytest.approx(1.0, abs=1e-6)


def test_one_hot_map_has_entropy_zero() -> None:
    grid = torch.zeros(16, 16)
    grid[3, 7] = 0.4
    result = spatial_entropy(grid)
    assert float(result.nats) == 0.0 and float(result.normalised) == 0.0


def test_hand_computed_map() -> None:
    grid = torch.tensor([[1.0, 1.0], [2.0, 0.0]])  # normalised: 1/4, 1/4, 1/2, 0
    expected = 2 * 0.25 * math.log(4) + 0.5 * math.log(2)
    assert float(spatial_entropy(grid).nats) == pytest.approx(expected, abs=1e-8)
    assert float(spatial_entropy(grid).normalised) == pytest.approx(expected / math.log(4))


def test_matches_scipy_on_a_batch_of_random_maps() -> None:
    maps = torch.rand(3, 5, 6, 6) ** 4
    result = spatial_entropy(maps)
    assert result.nats.shape == (3, 5)
    reference = scipy_entropy(maps.flatten(-2).double().numpy(), axis=-1)
    torch.testing.assert_close(result.nats, torch.from_numpy(reference), atol=1e-7, rtol=0)


def test_invalid_maps_are_refused() -> None:
    with pytest.raises(SignalError, match="non-negative.*minimum is -1"):
        spatial_entropy(torch.tensor([[1.0, -1.0], [0.5, 0.5]]))
    with pytest.raises(SignalError, match="positive total mass"):
        spatial_entropy(torch.zeros(2, 3, 3))
    with pytest.raises(SignalError, match="NaN or inf"):
        spatial_entropy(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ShapeError, match="at least 2 cells, but the maps have 1"):
        spatial_entropy(torch.ones(1, 1))


def test_early_locking_finds_a_planted_drop() -> None:
    entropy = torch.tensor(
        [
            [5.0, 5.0, 4.8, 2.0, 1.9, 1.9, 2.2, 2.6],  # drop of 2.8 arriving at layer 3
            [3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # drop of 2.0 arriving at layer 1
        ],
        dtype=torch.float64,
    )
    evolution = entropy_evolution(entropy)
    assert evolution.early_locking_layer.tolist() == [3, 1]
    torch.testing.assert_close(
        evolution.largest_drop, torch.tensor([2.8, 2.0], dtype=torch.float64)
    )
    torch.testing.assert_close(evolution.delta[0, 2], torch.tensor(-2.8, dtype=torch.float64))
    # the last 3 steps: 1.9 -> 1.9 -> 2.2 -> 2.6 is a rise of 0.7; the flat row does not rise
    torch.testing.assert_close(evolution.late_rise, torch.tensor([0.7, 0.0], dtype=torch.float64))
    assert evolution.late_diffusion.tolist() == [True, False]


def test_layer_labels_and_window() -> None:
    entropy = torch.tensor([4.0, 4.0, 1.0, 1.5])
    evolution = entropy_evolution(entropy, layers=[20, 21, 22, 23], late_window=1, threshold=0.6)
    assert int(evolution.early_locking_layer) == 22
    assert float(evolution.late_rise) == pytest.approx(0.5)
    assert not bool(evolution.late_diffusion)
    assert evolution.layers == (20, 21, 22, 23)


def test_ties_go_to_the_earliest_layer_and_rises_give_a_negative_drop() -> None:
    evolution = entropy_evolution(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert int(evolution.early_locking_layer) == 1
    rising = entropy_evolution(torch.tensor([1.0, 2.0, 4.0]), late_window=2)
    assert float(rising.largest_drop) == -1.0


def test_evolution_errors() -> None:
    with pytest.raises(ConfigError, match=r"late_window must lie in 1..2.*got 3"):
        entropy_evolution(torch.rand(4, 3))
    with pytest.raises(ShapeError, match="at least 2 layers, but got 1"):
        entropy_evolution(torch.rand(4, 1), late_window=1)
    with pytest.raises(ShapeError, match=r"one layer per position of the layer axis \(3\)"):
        entropy_evolution(torch.rand(3), layers=[1, 2], late_window=1)
