"""Synthetic answer-position activations with correctness planted at known layers and neurons."""

import numpy as np
import pytest


def planted(
    n: int = 600,
    layers: int = 8,
    d: int = 24,
    *,
    signal_layers: tuple[int, ...] = (5,),
    strength: float = 1.5,
    neurons: tuple[int, ...] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`(n, layer, d)` anisotropic Gaussian activations and 0/1 labels.

    Correctness shifts the activations along one random direction (or along `neurons` only) at
    `signal_layers`; every other layer is independent of the labels.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.45).astype(np.int64)
    scales = np.exp(rng.uniform(-1.5, 1.5, (layers, d)))  # features on different scales
    x = rng.standard_normal((n, layers, d)) * scales + rng.normal(0, 3, (layers, d))
    for layer in signal_layers:
        if neurons is None:
            direction = rng.standard_normal(d)
            direction /= np.linalg.norm(direction)
        else:
            direction = np.zeros(d)
            direction[list(neurons)] = 1.0
        x[:, layer] += strength * np.outer(2 * y - 1, direction * scales[layer])
    return x, y


@pytest.fixture(scope="module")
def planted_data() -> tuple[np.ndarray, np.ndarray]:
    return planted()
