"""Patching sweeps against planted answers: causality and full restoration give known scores."""

import numpy as np
import pytest
import torch

import vrp
from circuits import (
    patch_heads,
    patch_mlp_by_layer,
    patch_resid_by_layer,
    patch_sweep,
    yes_no_metric,
)
from tests.conftest import random_images
from vrp import AllTokens, Component, Indices, LastToken, Site
from vrp.interventions import Patch, graph, run_graph

QUESTION = ["is there a red circle ?", "is there a blue square ?"]


@pytest.fixture
def pair(vlm):
    """Same questions, different images: the corruption is visual only, positions line up."""
    return vlm.encode(random_images(2, seed=1), QUESTION), vlm.encode(
        random_images(2, seed=2), QUESTION
    )


def test_sweep_cells_equal_single_patch_graphs(vlm, pair) -> None:
    clean, corrupt = pair
    metric = yes_no_metric(vlm)
    sites = [Site(layer=i, component=Component.RESID_PRE, positions=LastToken()) for i in range(2)]
    result = patch_sweep(vlm, clean, corrupt, sites, metric)
    for site, score in zip(sites, result.scores, strict=True):
        g = graph(Patch(site=site, source="clean", run="corrupt"), runs=("clean", "corrupt"))
        logits = run_graph(vlm, g, {"clean": clean, "corrupt": corrupt}).answer_logits["corrupt"]
        torch.testing.assert_close(score, metric(logits).mean(), atol=1e-5, rtol=0)
    assert result.clean == pytest.approx(float(metric(vlm.answer_logits(clean)).mean()), abs=1e-5)


def test_planted_full_restoration_and_causal_zero(vlm, pair) -> None:
    clean, corrupt = pair
    last = vlm.adapter.n_layers - 1
    sites = [
        Site(layer=last, component=Component.RESID_POST, positions=LastToken()),  # all that is read
        Site(layer=0, component=Component.RESID_POST, positions=AllTokens()),  # all that follows
        Site(
            layer=last, component=Component.RESID_POST, positions=Indices((0,))
        ),  # read by nothing
    ]
    normalised = patch_sweep(vlm, clean, corrupt, sites, yes_no_metric(vlm)).normalised
    np.testing.assert_allclose(normalised.numpy(), [1.0, 1.0, 0.0], atol=1e-3)


def test_chunking_does_not_change_scores(vlm, pair) -> None:
    clean, corrupt = pair
    sites = [Site(layer=i, component=c, positions=LastToken())
             for i in range(2) for c in (Component.ATTN_OUT, Component.MLP_OUT)]  # fmt: skip
    metric = yes_no_metric(vlm)
    one = patch_sweep(vlm, clean, corrupt, sites, metric)
    chunked = patch_sweep(vlm, clean, corrupt, sites, metric, cells_per_trace=1)
    torch.testing.assert_close(one.per_row, chunked.per_row, atol=1e-5, rtol=0)


def test_named_sweeps_have_their_coordinates(vlm, pair) -> None:
    clean, corrupt = pair
    metric = yes_no_metric(vlm)
    assert [s.layer for s in patch_resid_by_layer(vlm, clean, corrupt, metric).sites] == [0, 1]
    assert {s.component for s in patch_mlp_by_layer(vlm, clean, corrupt, metric).sites} == {
        Component.MLP_OUT
    }
    heads = patch_heads(vlm, clean, corrupt, metric)
    assert [(s.layer, s.heads) for s in heads.sites][:2] == [(0, (0,)), (0, (1,))]
    assert heads.per_row.shape == (8, 2)


def test_sweep_errors(vlm, pair) -> None:
    clean, corrupt = pair
    metric = yes_no_metric(vlm)
    with pytest.raises(vrp.ConfigError, match=r"clean has 2 rows, corrupt 1"):
        patch_sweep(
            vlm, clean, corrupt.rows([0]), [Site(layer=0, component=Component.MLP_OUT)], metric
        )
    n = vlm.adapter.n_layers
    for layer in (n, -1):  # checked before any trace, also for cells that run none
        away = Site(layer=layer, component=Component.RESID_POST, positions=Indices((0,)))
        with pytest.raises(vrp.GraphError, match=r"layer"):
            patch_sweep(vlm, clean, corrupt, [away], metric)
    with pytest.raises(vrp.ConfigError, match=r"runs per trace"):
        patch_sweep(vlm, clean, corrupt, [Site(layer=0, component=Component.MLP_OUT)], metric,
                    cells_per_trace=0)  # fmt: skip
    same = patch_sweep(vlm, clean, clean, [Site(layer=0, component=Component.MLP_OUT)], metric)
    with pytest.raises(vrp.ConfigError, match=r"Clean and corrupted runs score the same"):
        _ = same.normalised


def test_per_row_normalisation_and_records(vlm, pair) -> None:
    clean, corrupt = pair
    metric = yes_no_metric(vlm)
    sites = [Site(layer=i, component=Component.MLP_OUT, positions=LastToken()) for i in range(2)]
    result = patch_sweep(vlm, clean, corrupt, sites, metric)
    torch.testing.assert_close(
        result.clean_per_row, metric(vlm.answer_logits(clean)), atol=1e-5, rtol=0
    )
    expected = (result.per_row - result.corrupt_per_row) / (
        result.clean_per_row - result.corrupt_per_row
    )
    torch.testing.assert_close(result.normalised_per_row, expected)
    rows = result.to_records()
    assert len(rows) == 2 * 2  # cells x rows
    assert [(r["cell"], r["layer"], r["row"]) for r in rows] == [
        (0, 0, 0),
        (0, 0, 1),
        (1, 1, 0),
        (1, 1, 1),
    ]
    assert rows[3]["component"] == "mlp_out" and rows[3]["positions"] == "last"
    assert rows[3]["normalised"] == pytest.approx(float(expected[1, 1]))
    same = patch_sweep(vlm, clean, clean, sites[:1], metric)
    assert same.normalised_per_row.isnan().all()  # nothing to restore: NaN, not an error
