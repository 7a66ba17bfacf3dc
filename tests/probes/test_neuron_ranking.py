"""Neuron rankings recover planted neurons, by probe weight and by mean difference."""

import numpy as np
import pytest
from conftest import planted

from vrp.core import ShapeError
from vrp.probes import LogisticProbe, NeuronRanking, rank_by_mean_difference, rank_by_weight


@pytest.fixture(scope="module")
def sparse_signal() -> tuple[np.ndarray, np.ndarray]:
    x, y = planted(n=800, layers=1, d=40, signal_layers=(0,), neurons=(7, 21, 33), strength=0.6)
    return x[:, 0], y


def test_rank_by_scaled_weight_finds_the_planted_neurons(
    sparse_signal: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = sparse_signal
    probe = LogisticProbe(C=0.1).fit(x, y)
    ranking = rank_by_weight(probe.coef_, scale=x.std(0), top_k=3)
    assert isinstance(ranking, NeuronRanking)
    assert set(ranking.top(3)) == {7, 21, 33}
    assert ranking.method == "scaled weight" and ranking.d == 40 and ranking.indices.size == 3
    assert np.all(ranking.scores > 0)  # correct samples sit higher on every planted neuron


def test_rank_by_mean_difference_finds_the_planted_neurons(
    sparse_signal: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = sparse_signal
    assert set(rank_by_mean_difference(x, y, standardize=True).top(3)) == {7, 21, 33}
    raw = rank_by_mean_difference(x, y)
    assert raw.indices.size == 40 and raw.method == "mean difference"
    assert raw.scores[0] == pytest.approx(
        x[y == 1, raw.indices[0]].mean() - x[y == 0, raw.indices[0]].mean()
    )


def test_rank_by_weight_orders_by_magnitude() -> None:
    ranking = rank_by_weight(np.array([0.1, -3.0, 2.0, 0.0]))
    assert ranking.top(4) == (1, 2, 0, 3)
    assert ranking.scores.tolist() == [-3.0, 2.0, 0.1, 0.0]


def test_ranking_errors() -> None:
    with pytest.raises(ShapeError, match=r"coef must have shape \(d,\) or \(1, d\)"):
        rank_by_weight(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="one value per neuron"):
        rank_by_weight(np.ones(3), scale=np.ones(2))
    with pytest.raises(ShapeError, match=r"acts must have shape \(n, d\) with n = 3"):
        rank_by_mean_difference(np.ones((4, 2)), [0, 1, 1])
