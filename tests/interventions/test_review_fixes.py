"""Regression tests: broadcast runs, graph equality, per-row patch masks, open keys, mean shapes."""

import pytest
import torch

import vrp
from tests.conftest import QUESTIONS, random_images
from tests.reference import hooked_logits
from vrp.core import AllTokens, Component, ImageTokens, LastToken, Site, Tower
from vrp.interventions import (
    Add,
    AttentionKnockout,
    Capture,
    ExecutionConfig,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Patch,
    graph,
    run_graph,
)

LAST = Site(layer=0, component=Component.RESID_POST, positions=LastToken())


@pytest.mark.parametrize("order", [("clean", "corrupt"), ("corrupt", "clean")])
@pytest.mark.parametrize("budget", [None, 1e-6])
def test_one_row_source_is_kept_once(vlm, order, budget) -> None:
    clean = vlm.encode(random_images(1, seed=1), QUESTIONS[:1])
    corrupt = vlm.encode(random_images(4, seed=2), QUESTIONS[:4])
    g = graph(Capture(site=LAST, name="src", run="clean"), Patch(site=LAST, source="clean", run="corrupt"),
              Capture(site=LAST, name="dst", run="corrupt"), runs=order)  # fmt: skip
    result = run_graph(
        vlm, g, {"clean": clean, "corrupt": corrupt}, ExecutionConfig(memory_budget_mb=budget)
    )
    assert result["src"].shape[0] == 1 and result.answer_logits["clean"].shape[0] == 1
    assert result["dst"].shape[0] == 4 and result.answer_logits["corrupt"].shape[0] == 4
    torch.testing.assert_close(result["dst"], result["src"].expand(4, -1, -1), atol=1e-6, rtol=0)


def test_graphs_equal_their_json_round_trip_with_tensors_of_any_dtype() -> None:
    site = Site(layer=0, component=Component.RESID_POST, positions=LastToken())
    g = graph(
        MeanAblate(site=site, mean=torch.randn(1, 32).bfloat16()),
        Add(site=site, direction=torch.randn(32)),
        ImagePatchMask(patches=[3, 1, 2]),
        AttentionKnockout(layer=1, heads=[0, 2]),
    )
    again = Graph.from_json(g.to_json())
    assert again == g
    assert again.nodes[0].mean.dtype == torch.bfloat16  # type: ignore[attr-defined]
    assert ImagePatchMask(patches=[1, 2]) == ImagePatchMask(patches=(1, 2))
    assert MeanAblate(site=site, mean=torch.zeros(2)) != MeanAblate(site=site, mean=torch.ones(2))
    assert '"$site"' in g.to_json() and '"site": {"site"' not in g.to_json()


def test_per_row_patch_masks_equal_hooks(vlm) -> None:
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    rows = ((0, 5, 7), (2, 3, 4))
    site = Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST)

    def edit(x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(2, -1, x.shape[-1])
        for row, patches in enumerate(rows):
            tokens[row, list(patches)] = 0
        return tokens.reshape(x.shape)

    expected = hooked_logits(vlm, inputs, [(site, edit)])
    got = run_graph(vlm, graph(ImagePatchMask(patches=rows, fill="zero")), inputs).answer_logits[
        "main"
    ]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_patch_mask_validation(vlm) -> None:
    with pytest.raises(vrp.GraphError, match=r"non-empty patch list"):
        ImagePatchMask(patches=())
    with pytest.raises(vrp.GraphError, match=r"same length for every row"):
        ImagePatchMask(patches=((1, 2), (3,)))
    with pytest.raises(vrp.GraphError, match=r"distinct and >= 0"):
        ImagePatchMask(patches=(1, 1))
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    with pytest.raises(
        vrp.GraphError, match=r"index 16 is outside the image's 16 tokens \(0..15\)"
    ):
        run_graph(vlm, graph(ImagePatchMask(patches=(16,))), inputs)
    with pytest.raises(vrp.GraphError, match=r"patches for 3 rows, the run has 2 rows"):
        run_graph(vlm, graph(ImagePatchMask(patches=((1,), (2,), (3,)))), inputs)


def test_knockout_leaving_no_key_is_refused(vlm) -> None:
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    node = AttentionKnockout(layer=0, queries=ImageTokens(), keys=AllTokens())
    with pytest.raises(vrp.GraphError, match=r"would have no key left to attend to"):
        run_graph(vlm, graph(node), inputs)


def test_mean_per_unit_broadcasts_over_positions(vlm) -> None:
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    site = Site(layer=1, component=Component.MLP_NEURONS, positions=ImageTokens())
    unit_mean = torch.randn(48)
    full = unit_mean.expand(inputs.n_image_tokens, 48).clone()
    a = run_graph(vlm, graph(MeanAblate(site=site, mean=unit_mean)), inputs).answer_logits["main"]
    b = run_graph(vlm, graph(MeanAblate(site=site, mean=full)), inputs).answer_logits["main"]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    with pytest.raises(vrp.ShapeError, match=r"must equal that \(or broadcast to it\)"):
        run_graph(vlm, graph(MeanAblate(site=site, mean=torch.zeros(47))), inputs)
