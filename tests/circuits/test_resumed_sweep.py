"""A patching sweep computes only what a patch can change (each cell resumed at its layer from the
corrupted stream, the baselines once per sweep), and its scores equal the slow reference: one
graph per cell, every layer run, the clean run as the patch source."""

import pytest
import torch

import vrp
from circuits import patch_sweep, yes_no_metric
from tests.conftest import random_images
from vrp import Component, ImageTokens, Indices, LastToken, Site
from vrp.interventions import Patch, graph, run_graph

QUESTIONS = ["is there a red circle ?", "is there a blue square ?", "is there a green cross ?"]


def _cells(n_layers: int) -> list[Site]:
    cells = []
    for layer in range(n_layers):
        cells += [
            Site(layer=layer, component=Component.RESID_PRE, positions=LastToken()),
            Site(layer=layer, component=Component.RESID_POST, positions=Indices((3,))),
            Site(layer=layer, component=Component.ATTN_OUT, positions=ImageTokens()),
            Site(layer=layer, component=Component.MLP_OUT, positions=LastToken()),
            Site(layer=layer, component=Component.HEAD_OUT, heads=(1, 2), positions=LastToken()),
            Site(
                layer=layer, component=Component.MLP_NEURONS, neurons=(0, 5), positions=LastToken()
            ),
        ]
    return cells


@pytest.mark.parametrize("family", vrp.families())
def test_a_resumed_sweep_equals_one_full_graph_per_cell(family: str) -> None:
    vlm = vrp.load(f"tiny/{family}", dtype=torch.float64)
    clean = vlm.encode(random_images(3, seed=1), QUESTIONS)
    corrupt = vlm.encode(random_images(3, seed=2), QUESTIONS)
    metric = yes_no_metric(vlm)
    cells = _cells(vlm.adapter.n_layers)
    result = patch_sweep(vlm, clean, corrupt, cells, metric, cells_per_trace=4)
    for cell, got in zip(cells, result.per_row, strict=True):
        g = graph(Patch(site=cell, source="clean", run="corrupt"), runs=("clean", "corrupt"))
        logits = run_graph(vlm, g, {"clean": clean, "corrupt": corrupt}).answer_logits["corrupt"]
        torch.testing.assert_close(got, metric(logits), atol=1e-9, rtol=0, msg=str(cell))
    torch.testing.assert_close(result.clean_per_row, metric(vlm.answer_logits(clean)))
    torch.testing.assert_close(result.corrupt_per_row, metric(vlm.answer_logits(corrupt)))
