"""`Resume` (the language layers below a layer not run, their stream given) and `Assign` (a stored
value set at a site): equal to running every layer and to patching from a run, on every family,
in one trace or chunked (a resumed patching sweep on `vrp serve` is in tests/serve); and clear
errors for what cannot be resumed."""

import pytest
import torch

import vrp
from tests.conftest import QUESTIONS, random_images
from vrp import Component, GraphError, ImageTokens, Indices, LastToken, Site
from vrp.core import ShapeError
from vrp.interventions import (
    Assign,
    Capture,
    ExecutionConfig,
    Graph,
    Patch,
    Resume,
    Zero,
    graph,
    resume_state,
    run_graph,
)


def _pair(vlm):
    return (vlm.encode(random_images(3, seed=1), QUESTIONS[:3]),
            vlm.encode(random_images(3, seed=2), QUESTIONS[1:4]))  # fmt: skip


def _stream(vlm, inputs, layer: int) -> torch.Tensor:
    site = Site(layer=layer - 1, component=Component.RESID_POST)
    return run_graph(vlm, graph(Capture(site=site, name="h")), inputs)["h"]


@pytest.mark.parametrize("family", vrp.families())
def test_a_resumed_graph_equals_running_every_layer(family: str) -> None:
    vlm = vrp.load(f"tiny/{family}")
    clean, corrupt = _pair(vlm)
    config = ExecutionConfig(memory_budget_mb=1e-3)  # one row per trace: chunks resume too
    last = vlm.adapter.n_layers - 1
    for layer in range(1, last + 2):
        at = min(layer, last)
        heads = Site(layer=at, component=Component.HEAD_OUT, heads=(1,), positions=LastToken())
        boundary = Site(layer=layer - 1, component=Component.RESID_POST, positions=Indices((2, 5)))
        clean_value = run_graph(vlm, graph(Capture(site=boundary, name="v")), clean)["v"]
        nodes = [Assign(site=boundary, value=clean_value, run="a"),
                 Capture(site=Site(layer=at, component=Component.RESID_POST, positions=Indices((3, 9, 12))), name="after",
                         run="a")]  # fmt: skip
        if layer <= last:
            nodes += [Zero(site=heads, run="b"),
                      Capture(site=Site(layer=layer, component=Component.ATTN_PATTERN, positions=LastToken()),
                              name="pattern", run="b")]  # fmt: skip
        g = Graph(nodes=tuple(nodes), runs=("a", "b"))
        runs = {"a": corrupt, "b": corrupt}
        full = run_graph(vlm, g, runs, config)
        resumed = run_graph(vlm, g, runs, config,
                            resume=Resume(layer=layer, hidden=_stream(vlm, corrupt, layer)))  # fmt: skip
        for run in runs:  # equal up to rounding: the resumed trace's batch differs (no pixels)
            torch.testing.assert_close(full.answer_logits[run], resumed.answer_logits[run],
                                       atol=1e-6, rtol=0)  # fmt: skip
        for name in full.captures:  # real positions (a padding position holds no defined value)
            torch.testing.assert_close(full[name], resumed[name], atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", vrp.families())
def test_assign_equals_patching_from_the_run_it_was_captured_on(family: str) -> None:
    vlm = vrp.load(f"tiny/{family}")
    clean, corrupt = _pair(vlm)
    for site in (Site(layer=1, component=Component.MLP_NEURONS, neurons=(0, 3),
                      positions=LastToken()),
                 Site(layer=0, component=Component.ATTN_OUT, positions=ImageTokens())):  # fmt: skip
        value = run_graph(vlm, graph(Capture(site=site, name="v")), clean)["v"]
        assigned = run_graph(vlm, graph(Assign(site=site, value=value)), corrupt)
        patched = run_graph(vlm, graph(Patch(site=site, source="clean", run="main"),
                                       runs=("clean", "main")),
                            {"clean": clean, "main": corrupt})  # fmt: skip
        torch.testing.assert_close(assigned.answer_logits["main"],
                                   patched.answer_logits["main"], atol=1e-5, rtol=0)  # fmt: skip


def test_assign_round_trips_through_json_and_checks_shapes() -> None:
    vlm = vrp.load("tiny/llava")
    _, corrupt = _pair(vlm)
    site = Site(layer=1, component=Component.RESID_POST, positions=LastToken())
    g = graph(Assign(site=site, value=torch.randn(3, 1, 32)))
    assert Graph.from_json(g.to_json()) == g
    with pytest.raises(GraphError, match=r"the stored value has 4 rows and the run 'main' 3"):
        run_graph(vlm, graph(Assign(site=site, value=torch.randn(4, 1, 32))), corrupt)
    with pytest.raises(ShapeError, match=r"assign at .* the stored value has shape \(3, 2, 32\)"):
        run_graph(vlm, graph(Assign(site=site, value=torch.randn(3, 2, 32))), corrupt)


def test_what_cannot_be_resumed_is_refused_clearly() -> None:
    vlm = vrp.load("tiny/llava")
    clean, corrupt = _pair(vlm)
    hidden = _stream(vlm, corrupt, 1)
    resume = Resume(layer=1, hidden=hidden)
    below = graph(Zero(site=Site(layer=0, component=Component.MLP_OUT)))
    with pytest.raises(
        GraphError, match=r"zero .* acts below the resumed layer 1, which is not run"
    ):
        run_graph(vlm, below, corrupt, resume=resume)
    two = Graph(nodes=(Capture(site=Site(layer=1, component=Component.MLP_OUT), name="x",
                               run="a"),), runs=("a", "b"))  # fmt: skip
    with pytest.raises(GraphError, match=r"every run must encode the same inputs as the stream"):
        run_graph(vlm, two, {"a": corrupt, "b": clean}, resume=resume)
    other_images = vlm.encode(random_images(3, seed=9), QUESTIONS[1:4])  # same prompts
    with pytest.raises(GraphError, match=r"\(token ids, masks and pixels\); 'a' and 'b' differ"):
        run_graph(vlm, two, {"a": corrupt, "b": other_images}, resume=resume)
    from_state = resume_state(vlm, corrupt).at(1)
    with pytest.raises(GraphError, match=r"'main' and 'the resumed inputs' differ"):
        run_graph(
            vlm,
            graph(Capture(site=Site(layer=1, component=Component.MLP_OUT), name="x")),
            other_images,
            resume=from_state,
        )
    fine = graph(Capture(site=Site(layer=1, component=Component.MLP_OUT), name="x"))
    with pytest.raises(GraphError, match=r"resume.hidden must be .* shape \(3, \d+, 32\)"):
        run_graph(vlm, fine, corrupt, resume=Resume(layer=1, hidden=hidden[:2]))
    with pytest.raises(GraphError, match=r"resume.layer must be a language layer in 1..2"):
        run_graph(vlm, fine, corrupt, resume=Resume(layer=3, hidden=hidden))


SAME_LENGTH = ["is there a red circle ?", "is there a blue square ?", "is there a green cross ?"]


@pytest.mark.parametrize("family", [f for f in vrp.families() if f != "paligemma"])
def test_a_run_resumed_at_a_position_equals_the_full_run(family: str) -> None:
    vlm = vrp.load(f"tiny/{family}", dtype=torch.float64)
    clean = vlm.encode(random_images(3, seed=1), SAME_LENGTH)
    corrupt = vlm.encode(random_images(3, seed=2), SAME_LENGTH)
    state = resume_state(vlm, corrupt)
    torch.testing.assert_close(state.answer_logits, vlm.answer_logits(corrupt))
    for back in (6, 1):
        site = Site(layer=0, component=Component.RESID_POST, positions=Indices((-back,)))
        value = run_graph(vlm, graph(Capture(site=site, name="v")), clean)["v"]
        g = Graph(nodes=(Assign(site=site, value=value, run="a"),
                         Capture(site=Site(layer=1, component=Component.MLP_OUT,
                                           positions=LastToken()), name="x", run="b")),
                  runs=("a", "b"))  # fmt: skip
        runs = {"a": corrupt, "b": corrupt}
        full = run_graph(vlm, g, runs)
        for budget in (None, 1e-3):
            resumed = run_graph(vlm, g, runs, ExecutionConfig(memory_budget_mb=budget),
                                resume=state.at(1, corrupt.seq_len - back))  # fmt: skip
            for run in runs:
                torch.testing.assert_close(full.answer_logits[run], resumed.answer_logits[run],
                                           atol=1e-12, rtol=0)  # fmt: skip
            torch.testing.assert_close(full["x"], resumed["x"], atol=1e-12, rtol=0)


def test_what_cannot_resume_at_a_position_is_refused_clearly() -> None:
    vlm = vrp.load("tiny/llava")
    corrupt = vlm.encode(random_images(3, seed=2), SAME_LENGTH)
    state = resume_state(vlm, corrupt)
    start = corrupt.seq_len - 3
    last = graph(Capture(site=Site(layer=1, component=Component.MLP_OUT, positions=LastToken()),
                         name="x"))  # fmt: skip
    early = graph(Capture(site=Site(layer=1, component=Component.MLP_OUT,
                                    positions=Indices((2,))), name="x"))  # fmt: skip
    with pytest.raises(GraphError, match=rf"selects positions before resume.start={start}"):
        run_graph(vlm, early, corrupt, resume=state.at(1, start))
    pattern = graph(Capture(site=Site(layer=1, component=Component.ATTN_PATTERN,
                                      positions=LastToken()), name="p"))  # fmt: skip
    source_early = Graph(nodes=(Patch(site=Site(layer=1, component=Component.MLP_OUT,
                                                positions=LastToken()), source="b", run="a",
                                      source_positions=Indices((2,))),), runs=("a", "b"))  # fmt: skip
    with pytest.raises(GraphError, match=rf"selects positions before resume.start={start}"):
        run_graph(vlm, source_early, {"a": corrupt, "b": corrupt}, resume=state.at(1, start))
    with pytest.raises(GraphError, match=r"attention patterns and knockouts are not available"):
        run_graph(vlm, pattern, corrupt, resume=state.at(1, start))
    with pytest.raises(GraphError, match=r"resume.start > 0 needs resume.past"):
        run_graph(vlm, last, corrupt, resume=Resume(layer=1, hidden=state.streams[1], start=start))
    with pytest.raises(GraphError, match=r"cached keys and values, which do not travel"):
        run_graph(vlm, last, corrupt, ExecutionConfig(backend="serialise"),
                  resume=state.at(1, start))  # fmt: skip
    pali = vrp.load("tiny/paligemma")
    inputs = pali.encode(random_images(3, seed=2), SAME_LENGTH)
    with pytest.raises(GraphError, match=r"paligemma's prompt attends bidirectionally"):
        run_graph(pali, last, inputs, resume=resume_state(pali, inputs).at(1, inputs.seq_len - 3))


@pytest.mark.parametrize("family", ["llava", "qwen2_vl", "paligemma"])
def test_a_state_taken_in_row_chunks_equals_one_taken_whole(family: str) -> None:
    vlm = vrp.load(f"tiny/{family}")
    corrupt = vlm.encode(random_images(3, seed=2), SAME_LENGTH)
    whole = resume_state(vlm, corrupt)
    chunked = resume_state(vlm, corrupt, ExecutionConfig(memory_budget_mb=1e-3))  # a row each
    torch.testing.assert_close(chunked.answer_logits, whole.answer_logits)
    for layer, stream in whole.streams.items():
        torch.testing.assert_close(chunked.streams[layer], stream)
    if whole.position_ids is not None:
        assert torch.equal(chunked.position_ids, whole.position_ids)
    if vlm.adapter.causal_prompt:
        start = corrupt.seq_len - 4
        g = graph(Capture(site=Site(layer=1, component=Component.MLP_OUT, positions=LastToken()),
                          name="x"))  # fmt: skip
        a = run_graph(vlm, g, corrupt, resume=whole.at(1, start))
        b = run_graph(vlm, g, corrupt, resume=chunked.at(1, start))
        torch.testing.assert_close(a.answer_logits["main"], b.answer_logits["main"])
        torch.testing.assert_close(a["x"], b["x"])
