"""Edge patching: equal to plain forward hooks on every family, and the identities it must meet
(all edges of a sender = patching the sender; every edge from the corrupted run = that run)."""

import pytest
import torch

import vrp.models as models
from tests.conftest import random_images
from tests.reference import captured, hooked_logits
from vrp.core import Component, GraphError, Site, Tower
from vrp.interventions import EdgePatch, Graph, Patch, graph, run_graph

ATOL = 1e-5
C = Component


def _pair(vlm: models.VLM) -> tuple[models.VlmInputs, models.VlmInputs]:
    """Clean and corrupted rows aligned token by token: other images, the same questions."""
    questions = ["is there a red circle ?", "is there a blue square ?"]
    return vlm.encode(random_images(2), questions), vlm.encode(random_images(2, seed=7), questions)


def _senders(n: int) -> list[Site]:
    blocks = [Site(layer=i, component=c) for i in range(n) for c in (C.ATTN_OUT, C.MLP_OUT)]
    return [Site(layer=0, component=C.RESID_PRE), *blocks]


def _receivers(n: int) -> list[Site]:
    blocks = [Site(layer=i, component=c) for i in range(n) for c in (C.ATTN_IN, C.MLP_IN)]
    return [*blocks, Site(layer=n - 1, component=C.RESID_POST)]


def _all_edges(n: int) -> list[tuple[Site, Site]]:
    return [(s, r) for s in _senders(n) for r in _receivers(n) if r.order > s.order]


def _reference(
    vlm: models.VLM,
    run: models.VlmInputs,
    source: models.VlmInputs,
    edges: list[tuple[Site, Site]],
) -> torch.Tensor:
    """Answer logits of `run` where each receiver's input gains, for each of its edges, the
    sender's value in `source` minus its value in this same forward (plain hooks)."""
    senders = list(dict.fromkeys(s for s, _ in edges))
    source_values = {s: captured(vlm, source, s) for s in senders}
    current: dict[Site, torch.Tensor] = {}

    def keep(site: Site):  # type: ignore[no-untyped-def]
        def edit(x: torch.Tensor) -> torch.Tensor:
            current[site] = x.clone()
            return x

        return edit

    def receive(site: Site):  # type: ignore[no-untyped-def]
        def edit(x: torch.Tensor) -> torch.Tensor:
            for s, r in edges:
                if r == site:
                    x = x + (source_values[s] - current[s])
            return x

        return edit

    edits = [(s, keep(s)) for s in senders]
    edits += [(r, receive(r)) for r in dict.fromkeys(r for _, r in edges)]
    return hooked_logits(vlm, run, edits)


def _edge_logits(vlm, run, source, edges) -> torch.Tensor:  # type: ignore[no-untyped-def]
    node = EdgePatch(run="run", source="source", edges=edges)
    result = run_graph(vlm, graph(node, runs=("run", "source")), {"run": run, "source": source})
    return result.answer_logits["run"]


def test_one_edge_equals_hooks(vlm: models.VLM) -> None:
    clean, corrupt = _pair(vlm)
    last = vlm.adapter.n_layers - 1
    for edge in [
        (Site(layer=0, component=C.ATTN_OUT), Site(layer=last, component=C.MLP_IN)),
        (Site(layer=0, component=C.RESID_PRE), Site(layer=last, component=C.ATTN_IN)),
        (Site(layer=0, component=C.MLP_OUT), Site(layer=last, component=C.RESID_POST)),
    ]:
        got = _edge_logits(vlm, corrupt, clean, [edge])
        torch.testing.assert_close(got, _reference(vlm, corrupt, clean, [edge]), atol=ATOL, rtol=0)
        assert (got - vlm.answer_logits(corrupt)).abs().max() > 1e-5, edge  # it did something


def test_edge_sets_equal_hooks(vlm: models.VLM) -> None:
    """Edges into one receiver from several senders, and chains where a patched receiver's
    output travels on: keep a random third of the edges, patch the rest from the corrupted run."""
    clean, corrupt = _pair(vlm)
    edges = _all_edges(vlm.adapter.n_layers)
    chosen = torch.randperm(len(edges), generator=torch.Generator().manual_seed(0))
    patched = [edges[i] for i in sorted(chosen[: 2 * len(edges) // 3].tolist())]
    got = _edge_logits(vlm, clean, corrupt, patched)
    torch.testing.assert_close(got, _reference(vlm, clean, corrupt, patched), atol=ATOL, rtol=0)


def test_all_edges_of_a_sender_equal_patching_the_sender(vlm: models.VLM) -> None:
    clean, corrupt = _pair(vlm)
    sender = Site(layer=0, component=C.ATTN_OUT)
    edges = [(s, r) for s, r in _all_edges(vlm.adapter.n_layers) if s == sender]
    node = Patch(site=sender, run="run", source="source")
    patched = run_graph(vlm, graph(node, runs=("run", "source")), {"run": corrupt, "source": clean})
    got = _edge_logits(vlm, corrupt, clean, edges)
    torch.testing.assert_close(got, patched.answer_logits["run"], atol=ATOL, rtol=0)


def test_every_edge_from_the_corrupted_run_is_that_run(vlm: models.VLM) -> None:
    clean, corrupt = _pair(vlm)
    got = _edge_logits(vlm, clean, corrupt, _all_edges(vlm.adapter.n_layers))
    torch.testing.assert_close(got, vlm.answer_logits(corrupt), atol=ATOL, rtol=0)


def test_edge_patch_round_trips_through_json() -> None:
    edge = (Site(layer=0, component=C.ATTN_OUT), Site(layer=2, component=C.MLP_IN))
    g = graph(EdgePatch(run="run", source="source", edges=[edge]), runs=("run", "source"))
    assert Graph.from_json(g.to_json()) == g


@pytest.mark.parametrize(
    ("edge", "message"),
    [
        ((Site(layer=2, component=C.ATTN_OUT), Site(layer=1, component=C.ATTN_IN)), "before its"),
        ((Site(layer=1, component=C.MLP_OUT), Site(layer=1, component=C.ATTN_IN)), "before its"),
        ((Site(layer=1, component=C.RESID_PRE), Site(layer=2, component=C.ATTN_IN)), "layer 0"),
        ((Site(layer=0, component=C.ATTN_IN), Site(layer=2, component=C.ATTN_IN)), "not an edge"),
        ((Site(layer=0, component=C.ATTN_OUT), Site(layer=2, component=C.MLP_OUT)), "not an edge"),
    ],
)
def test_what_is_not_an_edge_is_refused(edge: tuple[Site, Site], message: str) -> None:
    with pytest.raises(GraphError, match=message):
        EdgePatch(run="run", source="source", edges=[edge])


def test_logits_receive_only_at_the_last_layer(tiny_vlms: dict[str, models.VLM]) -> None:
    edge = (Site(layer=0, component=C.ATTN_OUT), Site(layer=0, component=C.RESID_POST))
    g = graph(EdgePatch(run="run", source="source", edges=[edge]), runs=("run", "source"))
    with pytest.raises(GraphError, match=r"RESID_POST receives only at the last layer"):
        g.validate(tiny_vlms["llava"])


def test_unaligned_runs_are_refused(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["llava"]
    run = vlm.encode(random_images(1), ["is there a red circle ?"])
    source = vlm.encode(random_images(1), ["is there a red circle left of a blue square ?"])
    edge = (Site(layer=0, component=C.ATTN_OUT), Site(layer=1, component=C.MLP_IN))
    g = graph(EdgePatch(run="run", source="source", edges=[edge]), runs=("run", "source"))
    with pytest.raises(GraphError, match=r"not aligned position by position"):
        g.validate(vlm, {"run": run, "source": source})


def test_a_source_with_more_rows_is_refused(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["llava"]
    run = vlm.encode(random_images(1), ["is there a red circle ?"])
    source = vlm.encode(random_images(2), ["is there a red circle ?"] * 2)
    edge = (Site(layer=0, component=C.ATTN_OUT), Site(layer=1, component=C.MLP_IN))
    g = graph(EdgePatch(run="run", source="source", edges=[edge]), runs=("run", "source"))
    with pytest.raises(GraphError, match=r"'source' has 2 rows and run 'run' 1"):
        g.validate(vlm, {"run": run, "source": source})


def test_the_memory_budget_counts_what_edge_patches_keep(
    tiny_vlms: dict[str, models.VLM], trace_rows: list[int]
) -> None:
    """Each sender's (source - run) difference lives until the trace ends: a budget that holds
    two rows of the runs' activations holds one row once every edge is patched, and the split
    run gives the same logits."""
    import vrp.interventions._execute as execute

    vlm = tiny_vlms["llava"]
    clean, corrupt = _pair(vlm)
    edges = _all_edges(vlm.adapter.n_layers)
    g = graph(EdgePatch(run="run", source="source", edges=edges), runs=("run", "source"))
    runs = {"run": corrupt, "source": clean}
    senders = len({s for s, _ in edges})
    kept = execute.edge_bytes_per_row(vlm, g, corrupt.seq_len)
    width = next(vlm.hf.parameters()).element_size()
    assert kept == senders * corrupt.seq_len * vlm.adapter.shape(Tower.LANGUAGE).d_model * width
    two_rows = 2 * 2 * execute.bytes_per_row(vlm, corrupt.seq_len, 1) / 2**20  # 2 runs x 2 rows
    assert kept / 2**20 > 0.01 * two_rows  # large enough to matter at this budget
    chunks = trace_rows
    config = execute.ExecutionConfig(memory_budget_mb=two_rows * 1.001, plan="off")
    split = run_graph(vlm, g, runs, config).answer_logits["run"]
    assert chunks == [1, 1]
    chunks.clear()
    plain = graph(Patch(site=edges[0][0], run="run", source="source"), runs=("run", "source"))
    run_graph(vlm, plain, runs, config)
    assert chunks == [2]  # without edge patches both rows fit
    torch.testing.assert_close(split, _edge_logits(vlm, corrupt, clean, edges), atol=ATOL, rtol=0)
