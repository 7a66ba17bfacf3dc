"""Circuits' sweeps on Ray replicas of the model (a local cluster started by the test, 2 CPUs):
the same traces, so the same scores, bit for bit; a killed replica is replaced."""

import os
import signal

import numpy as np
import pytest
import torch

from circuits import (
    DiscoveryConfig,
    corrupt_pairs,
    discover_circuit,
    patch_pairs,
    patch_sweep,
    usable_pairs,
)
from vrp import Component, Indices, Site
from vrp.core import ConfigError
from vrp.organisms import evaluation_set

ray = pytest.importorskip("ray")

from vrp.interventions import RayGraphPool  # noqa: E402  (after the skip)


@pytest.fixture(scope="module")
def setup():
    import vrp

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    vlm = vrp.load("organism/llava")
    data = evaluation_set(n_per_split=6, n_counting=0, n_spatial=0, seed=7)
    pairs = corrupt_pairs([data[i] for i in range(len(data))], kind="object", seed=0)
    pool = RayGraphPool("organism/llava", workers=2)
    yield vlm, pairs, pool
    pool.close()
    ray.shutdown()


def test_a_sweep_on_replicas_equals_the_local_sweep(setup) -> None:
    vlm, pairs, pool = setup
    _, clean, corrupt = usable_pairs(vlm, pairs)
    cells = [Site(layer=layer, component=Component.MLP_OUT, positions=Indices((p,)))
             for layer in range(4) for p in range(clean.seq_len - 4, clean.seq_len)]  # fmt: skip
    local = patch_sweep(vlm, clean, corrupt, cells, vlm.yes_no_margin, cells_per_trace=4)
    remote = patch_sweep(vlm, clean, corrupt, cells, vlm.yes_no_margin, cells_per_trace=4,
                         pool=pool)  # fmt: skip
    assert torch.equal(local.per_row, remote.per_row)
    assert torch.equal(local.clean_per_row, remote.clean_per_row)


def test_pair_patching_and_discovery_on_replicas_equal_local(setup) -> None:
    vlm, pairs, pool = setup
    local = patch_pairs(vlm, pairs[:6], cells_per_trace=8)
    remote = patch_pairs(vlm, pairs[:6], cells_per_trace=8, pool=pool)
    np.testing.assert_array_equal(local.metric, remote.metric)
    _, clean, corrupt = usable_pairs(vlm, pairs)
    config = DiscoveryConfig(sizes=(2, 8, 24))
    a = discover_circuit(vlm, clean, corrupt, config)
    b = discover_circuit(vlm, clean, corrupt, config, pool=pool)
    assert [e.estimate for e in a.faithfulness] == [e.estimate for e in b.faithfulness]
    assert a.circuit == b.circuit


def test_a_killed_replica_is_replaced_and_the_wrong_model_refused(setup) -> None:
    vlm, pairs, pool = setup
    os.kill(ray.get(pool.actors[0].pid.remote()), signal.SIGKILL)
    local = patch_pairs(vlm, pairs[:4], cells_per_trace=8)
    remote = patch_pairs(vlm, pairs[:4], cells_per_trace=8, pool=pool)
    np.testing.assert_array_equal(local.metric, remote.metric)
    assert pool.restarts >= 1
    import vrp

    other = vrp.load("tiny/llava")
    with pytest.raises(
        ConfigError, match="holds replicas of 'organism/llava', not of 'tiny/llava'"
    ):
        patch_sweep(other, *_rows(other), [Site(layer=0, component=Component.MLP_OUT)],
                    other.yes_no_margin, pool=pool)  # fmt: skip


def _rows(vlm):
    from tests.conftest import QUESTIONS, random_images

    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    return clean, vlm.encode(random_images(2, seed=2), QUESTIONS[:2])
