"""Attribution patching against finite differences (float64) and against exact patching."""

import numpy as np
import pytest
import torch
from scipy import stats

from circuits import agreement, attribution_patching, patch_sweep
from tests.conftest import QUESTIONS, random_images
from vrp import Component, ConfigError, Indices, Site
from vrp.interventions import Add, Graph, run_graph

WHOLE = (Component.RESID_POST, Component.ATTN_OUT, Component.HEAD_OUT, Component.MLP_NEURONS,
         Component.MLP_OUT)  # fmt: skip


@pytest.fixture(scope="module", params=["llava", "paligemma", "qwen2_vl"])
def vlm64(request):
    import vrp

    return vrp.load(f"tiny/{request.param}", dtype=torch.float64)


def _pair(vlm, n: int = 2):
    clean = vlm.encode(random_images(n, seed=1), QUESTIONS[:n])
    corrupt = vlm.encode(random_images(n, seed=2), QUESTIONS[:n])
    return clean, corrupt


def _directional(vlm, corrupt, site: Site, direction: torch.Tensor, eps: float) -> float:
    """Central difference of the margin along `direction` added at `site` (one row)."""
    margins = []
    for sign in (1.0, -1.0):
        node = Add(site=site, direction=direction, coefficient=sign * eps)
        logits = run_graph(vlm, Graph(nodes=(node,)), corrupt).answer_logits["main"]
        margins.append(float(vlm.yes_no_margin(logits)[0]))
    return (margins[0] - margins[1]) / (2 * eps)


def test_estimates_equal_finite_differences(vlm64) -> None:
    vlm = vlm64
    clean, corrupt = _pair(vlm, 1)
    sites = [Site(layer=layer, component=c) for layer in range(vlm.adapter.n_layers) for c in WHOLE]
    atp = attribution_patching(vlm, clean, corrupt, sites, vlm.yes_no_margin)
    last = corrupt.seq_len - 1
    image = int(corrupt.image_mask[0].nonzero()[0])
    for site in sites:
        for pos in (last, image):
            where = Site(layer=site.layer, component=site.component, positions=Indices((pos,)))
            delta = _delta(vlm, clean, corrupt, where)
            if site.component is Component.HEAD_OUT:
                for head in (0,):
                    narrowed = Site(layer=site.layer, component=site.component, heads=(head,),
                                    positions=Indices((pos,)))  # fmt: skip
                    fd = _directional(vlm, corrupt, narrowed, delta[head], 1e-3)
                    assert float(atp.score(site)[0, pos, head]) == pytest.approx(fd, abs=1e-5)
            elif site.component is Component.MLP_NEURONS:
                neuron = int(delta.abs().argmax())
                narrowed = Site(layer=site.layer, component=site.component, neurons=(neuron,),
                                positions=Indices((pos,)))  # fmt: skip
                fd = _directional(vlm, corrupt, narrowed, delta[neuron : neuron + 1], 1e-3)
                assert float(atp.score(site)[0, pos, neuron]) == pytest.approx(fd, abs=1e-5)
            else:
                fd = _directional(vlm, corrupt, where, delta, 1e-3)
                assert float(atp.score(site)[0, pos]) == pytest.approx(fd, abs=1e-5)


def _delta(vlm, clean, corrupt, site: Site) -> torch.Tensor:
    """clean - corrupt value at a one-position site of row 0 (trailing axes only)."""
    from vrp.interventions import Capture

    graph = Graph(nodes=(Capture(site=site, name="v", run="clean"),
                         Capture(site=site, name="w", run="corrupt")), runs=("clean", "corrupt"))  # fmt: skip
    out = run_graph(vlm, graph, {"clean": clean, "corrupt": corrupt})
    return (out["v"] - out["w"])[0, 0]


def test_padding_scores_zero_and_metrics_match_plain_runs(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    clean, corrupt = _pair(vlm, 3)
    site = Site(layer=1, component=Component.MLP_OUT)
    atp = attribution_patching(vlm, clean, corrupt, [site], vlm.yes_no_margin)
    pad = ~corrupt.attention_mask.bool()
    assert (atp.score(site)[pad] == 0).all()
    torch.testing.assert_close(atp.clean_metric, vlm.yes_no_margin(vlm.answer_logits(clean)))
    torch.testing.assert_close(atp.corrupt_metric, vlm.yes_no_margin(vlm.answer_logits(corrupt)))
    rows = atp.to_records()
    assert len(rows) == int(corrupt.attention_mask.sum())
    assert {r["unit"] for r in rows} == {None}


def test_agreement_with_exact_patching_on_the_organism(load_model) -> None:
    """Per (layer, component, position) cell of LLaVA's organism, AtP ranks cells like exact
    patching: a planted bar, well above chance (a random ranking has Spearman ~0)."""
    vlm = load_model("organism/llava")
    clean, corrupt = _pair(vlm, 1)
    layers = range(vlm.adapter.n_layers)
    comps = (Component.ATTN_OUT, Component.MLP_OUT)
    sites = [Site(layer=layer, component=c) for layer in layers for c in comps]
    atp = attribution_patching(vlm, clean, corrupt, sites, vlm.yes_no_margin)
    positions = range(corrupt.seq_len - 12, corrupt.seq_len)  # the question's last tokens
    cells = [Site(layer=s.layer, component=s.component, positions=Indices((p,)))
             for s in sites for p in positions]  # fmt: skip
    exact = patch_sweep(vlm, clean, corrupt, cells, vlm.yes_no_margin)
    effects = (exact.per_row[:, 0] - exact.corrupt_per_row[0]).numpy()
    estimates = np.array([float(atp.score(s)[0, p]) for s in sites for p in positions])
    found = agreement(estimates, effects, k=5)
    assert found.spearman > 0.5 and found.n == len(cells)
    assert found.spearman == pytest.approx(stats.spearmanr(estimates, effects).statistic)


def test_agreement_and_bad_inputs() -> None:
    exact = np.array([5.0, -4.0, 0.1, 0.2, 3.0])
    found = agreement(exact * 2, exact, k=3)
    assert found.spearman == pytest.approx(1.0) and found.top_k_recall == 1.0
    assert agreement([0.1, 0.2, 5.0, -4.0, 3.0], exact, k=2).top_k_recall == 0.0
    with pytest.raises(ConfigError, match="one length >= 3"):
        agreement([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match="k must lie in 1..5"):
        agreement(exact, exact, k=6)
    with pytest.raises(ConfigError, match="the exact effects are all equal"):
        agreement(exact, np.zeros(5), k=2)


def test_misaligned_rows_are_refused(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    clean = vlm.encode(random_images(2), QUESTIONS[:2])
    longer = vlm.encode(random_images(2), [q + " really" for q in QUESTIONS[:2]])
    with pytest.raises(ConfigError, match="pairs rows position by position"):
        attribution_patching(vlm, clean, longer, [Site(layer=0, component=Component.MLP_OUT)],
                             vlm.yes_no_margin)  # fmt: skip


def test_edges_sum_to_their_source_nodes_attribution(vlm) -> None:
    """The residual stream's gradients telescope: one source's edge scores add up to its node
    attribution (and the embeddings' to the layer-0 input's), on every family."""
    from circuits import edge_attribution

    clean, corrupt = _pair(vlm, 2)
    edges = edge_attribution(vlm, clean, corrupt, vlm.yes_no_margin)
    n = vlm.adapter.n_layers
    assert edges.upstream[0] == "embed" and edges.downstream[-1] == "logits"
    assert len(edges.upstream) == 1 + 2 * n and len(edges.downstream) == 2 * n + 1
    comps = {"attn": Component.ATTN_OUT, "mlp": Component.MLP_OUT}
    sites = [Site(layer=0, component=Component.RESID_PRE)]
    sites += [Site(layer=int(u.lstrip("atnmlp")), component=comps[u.rstrip("0123456789")])
              for u in edges.upstream[1:]]  # fmt: skip
    nodes = attribution_patching(vlm, clean, corrupt, sites, vlm.yes_no_margin)
    for i, site in enumerate(sites):
        total = torch.nansum(edges.scores[:, i, :], dim=1)
        torch.testing.assert_close(total, nodes.score(site).sum(dim=1).float(), atol=1e-4,
                                   rtol=1e-3)  # fmt: skip
    # an edge exists only towards a later block: mlp0 cannot feed attn0
    assert torch.isnan(edges.scores[:, edges.upstream.index("mlp0"), 0]).all()
    assert len(edges.to_records()) == 2 * int((~torch.isnan(edges.scores[0])).sum())
    assert len(edges.top(3)) == 3


def test_image_heatmap_is_the_image_positions_on_the_grid(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    clean, corrupt = _pair(vlm, 2)
    site = Site(layer=0, component=Component.RESID_POST)
    atp = attribution_patching(vlm, clean, corrupt, [site], vlm.yes_no_margin)
    grid = atp.image_grid(site, 1)
    assert grid.shape == corrupt.grids[1]
    np.testing.assert_array_equal(grid.ravel(), atp.score(site)[1][corrupt.image_mask[1]].numpy())
