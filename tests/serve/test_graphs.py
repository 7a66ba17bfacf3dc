"""VRP's intervention graphs and circuits sweeps on `vrp serve` equal their local runs."""

import pytest
import torch
from nnsight.intervention.backends.remote import RemoteError

import vrp
import vrp.models
from circuits import patch_sweep, yes_no_metric
from tests.conftest import QUESTIONS, random_images
from tests.interventions.test_properties import _rich_graph
from vrp import Component, LastToken, Site
from vrp.interventions import Capture, ExecutionConfig, graph, run_graph

from .conftest import ServerProcess


@pytest.mark.parametrize("family", vrp.models.families())
def test_a_rich_graph_runs_remotely_as_locally(tiny_server: ServerProcess, family: str) -> None:
    vlm = vrp.load(f"tiny/{family}")
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    runs = {"clean": clean, "corrupt": vlm.encode(random_images(2, seed=2), QUESTIONS[2:4])}
    g = _rich_graph(vlm, clean)
    local = run_graph(vlm, g, runs)
    remote = run_graph(vlm, g, runs, ExecutionConfig(backend=tiny_server.url))
    assert set(remote.captures) == set(local.captures) == {"before", "pattern"}
    for name in local.captures:
        assert torch.equal(remote[name], local[name]), name
    for run in runs:
        assert torch.equal(remote.answer_logits[run], local.answer_logits[run]), run


def test_a_graph_split_over_several_traces(tiny_server: ServerProcess) -> None:
    vlm = vrp.load("tiny/llava")
    inputs = vlm.encode(random_images(4, seed=3), list(QUESTIONS))
    g = graph(Capture(site=Site(layer=1, component=Component.RESID_POST), name="resid"))
    budget = 1e-3  # MB: one row per trace
    remote = run_graph(
        vlm, g, inputs, ExecutionConfig(backend=tiny_server.url, memory_budget_mb=budget)
    )
    local = run_graph(vlm, g, inputs, ExecutionConfig(memory_budget_mb=budget))
    assert remote["resid"].shape[0] == 4
    assert torch.equal(remote["resid"], local["resid"])


def test_a_patching_sweep_runs_remotely_as_locally(tiny_server: ServerProcess) -> None:
    vlm = vrp.load("tiny/llava")
    questions = ["is there a red circle ?", "is there a blue square ?"]
    clean = vlm.encode(random_images(2, seed=1), questions)
    corrupt = vlm.encode(random_images(2, seed=2), questions)
    sites = [Site(layer=i, component=c, positions=LastToken())
             for i in range(2) for c in (Component.ATTN_OUT, Component.MLP_OUT)]  # fmt: skip
    metric = yes_no_metric(vlm)
    local = patch_sweep(vlm, clean, corrupt, sites, metric)
    remote = patch_sweep(
        vlm, clean, corrupt, sites, metric, config=ExecutionConfig(backend=tiny_server.url)
    )
    # remotely the cells resume at their layers only (a key-value cache does not travel), and
    # the clean and corrupted rows run in two traces; locally the cells also resume at their
    # positions and the two batches share one trace: the same values up to float rounding
    torch.testing.assert_close(remote.per_row, local.per_row, atol=1e-6, rtol=0)
    assert remote.clean == pytest.approx(local.clean, abs=1e-6)
    assert remote.corrupt == pytest.approx(local.corrupt, abs=1e-6)


def test_a_refused_graph_is_a_remote_error(tiny_server: ServerProcess, tmp_path) -> None:
    vrp.models.save(vrp.load("tiny/llava"), tmp_path / "mine")
    mine = vrp.load(str(tmp_path / "mine"))  # the server hosts no model under this name
    inputs = mine.encode(random_images(1), QUESTIONS[:1])
    g = graph(Capture(site=Site(layer=0, component=Component.RESID_POST), name="r"))
    with pytest.raises(RemoteError, match=r"Failed to send request: .* is not hosted here"):
        run_graph(mine, g, inputs, ExecutionConfig(backend=tiny_server.url))
