"""Planned execution: runs that are only patches of shared inputs run resumed, and the graph's
results equal running it as written (float64, every family)."""

import pytest
import torch

import vrp
from tests.conftest import QUESTIONS, random_images
from vrp.core import Component, ImageTokens, Indices, LastToken, Site
from vrp.interventions import (
    Capture,
    ExecutionConfig,
    Patch,
    Zero,
    graph,
    run_graph,
)
from vrp.interventions._plan import fits_selection, plannable, reaches_answer, run_planned

C = Component


def _fail(*_args: object) -> None:
    raise AssertionError("the planner ran a trace for a graph it should leave as written")


@pytest.fixture(scope="module", params=vrp.models.families())
def vlm64(request):
    # SDPA: transformers' eager attention turns padded float64 rows into NaN
    return vrp.load(f"tiny/{request.param}", dtype=torch.float64, attn_implementation="sdpa")


def _sites(n_layers: int, seq_len: int) -> list[Site]:
    last = n_layers - 1
    return [
        Site(layer=0, component=C.RESID_POST, positions=LastToken()),
        Site(layer=0, component=C.ATTN_OUT, positions=Indices((seq_len - 3,))),
        Site(layer=0, component=C.MLP_OUT, positions=ImageTokens()),
        Site(layer=0, component=C.HEAD_OUT, heads=(1,), positions=LastToken()),
        Site(layer=last, component=C.MLP_NEURONS, neurons=(0, 3), positions=LastToken()),
        Site(layer=last, component=C.RESID_PRE, positions=Indices((seq_len - 2,))),
        Site(layer=last, component=C.RESID_POST, positions=LastToken()),
        Site(layer=0, component=C.ATTN_OUT, positions=Indices((seq_len - 5,))),
    ]


def test_planned_runs_equal_running_as_written(vlm64) -> None:
    vlm = vlm64
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[:2])
    sites = _sites(vlm.adapter.n_layers, corrupt.seq_len)
    names = [f"p{i}" for i in range(len(sites))]
    nodes = [Patch(site=s, source="clean", run=n) for s, n in zip(sites, names, strict=True)]
    extra = [
        Capture(site=Site(layer=1, component=C.RESID_PRE), name="seen", run="clean"),
        Zero(site=Site(layer=0, component=C.MLP_OUT), run="zeroed"),  # not a patch: as written
        Patch(site=sites[0], source="clean", run="two"),  # two patches in one run
        Patch(site=sites[2], source="clean", run="two"),
    ]
    g = graph(*nodes, *extra, runs=("clean", *names, "zeroed", "two", "plain"))
    inputs = {"clean": clean, **dict.fromkeys([*names, "zeroed", "two", "plain"], corrupt)}
    assert set(plannable(g, inputs)) == {*names, "two"}
    planned = run_graph(vlm, g, inputs)
    written = run_graph(vlm, g, inputs, ExecutionConfig(plan="off"))
    assert list(planned.answer_logits) == list(written.answer_logits) == list(g.runs)
    for run in g.runs:
        torch.testing.assert_close(
            planned.answer_logits[run], written.answer_logits[run], atol=1e-10, rtol=0
        )
    torch.testing.assert_close(planned["seen"], written["seen"], atol=0, rtol=0)
    assert set(planned.captures) == {"seen"}
    for name in names:  # every patch did something
        assert (planned.answer_logits[name] - planned.answer_logits["plain"]).abs().max() > 1e-8, (
            name
        )


def test_sources_and_the_shared_plain_run_share_one_trace(vlm64, monkeypatch) -> None:
    """A graph of patches only: the sources' values and the copies' plain run come from one
    trace of their stacked rows, and the results still equal running as written (every family,
    heads, neurons and several components among the patches)."""
    import vrp.interventions._plan as plan

    vlm, taken = vlm64, []
    real = plan.sources_and_state
    monkeypatch.setattr(plan, "sources_and_state",
                        lambda *a, **k: taken.append(real(*a, **k)) or taken[-1])  # fmt: skip
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[:2])
    last = vlm.adapter.n_layers - 1
    sites = [s for s in _sites(vlm.adapter.n_layers, corrupt.seq_len) if s.layer == last] + [
        Site(layer=last, component=C.HEAD_OUT, heads=(0,), positions=LastToken()),
        Site(layer=last, component=C.ATTN_OUT, positions=ImageTokens()),
    ]  # the last layer only: worth resuming even on these tiny models
    names = [f"p{i}" for i in range(len(sites))]
    g = graph(*(Patch(site=s, source="clean", run=n) for s, n in zip(sites, names, strict=True)),
              runs=("clean", *names))  # fmt: skip
    inputs = {"clean": clean, **dict.fromkeys(names, corrupt)}
    planned = run_graph(vlm, g, inputs)
    assert len(taken) == 1 and taken[0] is not None
    written = run_graph(vlm, g, inputs, ExecutionConfig(plan="off"))
    for run in g.runs:
        torch.testing.assert_close(
            planned.answer_logits[run], written.answer_logits[run], atol=1e-10, rtol=0
        )
    budget = run_graph(vlm, g, inputs, ExecutionConfig(memory_budget_mb=1e3))
    assert len(taken) == 2 and taken[1] is None  # a memory budget: the two traces apart
    for run in g.runs:
        torch.testing.assert_close(budget.answer_logits[run], written.answer_logits[run],
                                   atol=1e-10, rtol=0)  # fmt: skip


def test_runs_whose_patches_cannot_reach_the_answer_take_the_plain_logits(
    tiny_vlms, trace_rows: list[int]
) -> None:
    """The last layer's output patched away from the answer position: no trace runs them, their
    logits are the plain run's (and running them as written agrees)."""
    vlm = tiny_vlms["llava"]
    last = vlm.adapter.n_layers - 1
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[:2])
    away = Site(layer=last, component=C.RESID_POST, positions=Indices((-2, 1)))
    answer = Site(layer=last, component=C.RESID_POST, positions=LastToken())
    assert not reaches_answer(away, corrupt, vlm.adapter.n_layers)
    assert reaches_answer(answer, corrupt, vlm.adapter.n_layers)
    assert reaches_answer(Site(layer=last, component=C.MLP_OUT, positions=Indices((1,))),
                          corrupt, vlm.adapter.n_layers)  # fmt: skip
    g = graph(Patch(site=away, source="clean", run="a"), Patch(site=away, source="clean", run="b"),
              runs=("clean", "a", "b", "plain"))  # fmt: skip
    inputs = {"clean": clean, "a": corrupt, "b": corrupt, "plain": corrupt}
    planned = run_graph(vlm, g, inputs)
    assert trace_rows == []  # one trace of the sources and the copies' plain run, nothing else
    written = run_graph(vlm, g, inputs, ExecutionConfig(plan="off"))
    for run in ("a", "b"):
        torch.testing.assert_close(planned.answer_logits[run], written.answer_logits[run],
                                   atol=1e-5, rtol=0)  # fmt: skip
        torch.testing.assert_close(planned.answer_logits[run], written.answer_logits["plain"],
                                   atol=1e-5, rtol=0)  # fmt: skip


def test_what_is_not_planned(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    clean = vlm.encode(random_images(1, seed=1), QUESTIONS[:1])
    corrupt = vlm.encode(random_images(1, seed=2), QUESTIONS[:1])
    other = vlm.encode(random_images(1, seed=3), QUESTIONS[:1])
    site = Site(layer=1, component=C.RESID_POST, positions=LastToken())
    alone = graph(Patch(site=site, source="clean", run="a"), runs=("clean", "a"))
    assert not plannable(alone, {"clean": clean, "a": corrupt})  # one run: nothing to share
    apart = graph(Patch(site=site, source="clean", run="a"),
                  Patch(site=site, source="clean", run="b"), runs=("clean", "a", "b"))  # fmt: skip
    assert not plannable(apart, {"clean": clean, "a": corrupt, "b": other})  # other inputs
    written = graph(Zero(site=site, run="clean"), Patch(site=site, source="clean", run="a"),
                    Patch(site=site, source="clean", run="b"), runs=("clean", "a", "b"))  # fmt: skip
    assert not plannable(written, {"clean": clean, "a": corrupt, "b": corrupt})  # source writes
    early = Site(layer=0, component=C.MLP_OUT, positions=LastToken())
    layer0 = graph(Patch(site=early, source="clean", run="a"),
                   Patch(site=early, source="clean", run="b"), runs=("clean", "a", "b"))  # fmt: skip
    rows = {"clean": clean, "a": corrupt, "b": corrupt}
    assert run_planned(vlm, layer0, rows, ExecutionConfig(), _fail) is None  # nothing to skip


def test_row_counts_follow_the_written_rules(tiny_vlms) -> None:
    """A one-row source patches every row (planned as written); a source with more rows than
    its targets is refused as written, never planned."""
    vlm = tiny_vlms["qwen2_vl"]
    one = vlm.encode(random_images(1, seed=1), QUESTIONS[:1])
    two = vlm.encode(random_images(2, seed=2), [QUESTIONS[0]] * 2)
    site = Site(layer=1, component=C.RESID_POST, positions=LastToken())
    broadcast = graph(Patch(site=site, source="clean", run="a"),
                      Patch(site=site, source="clean", run="b"), runs=("clean", "a", "b"))  # fmt: skip
    rows = {"clean": one, "a": two, "b": two}
    assert set(plannable(broadcast, rows)) == {"a", "b"}
    planned = run_graph(vlm, broadcast, rows)
    written = run_graph(vlm, broadcast, rows, ExecutionConfig(plan="off"))
    torch.testing.assert_close(planned.answer_logits["b"], written.answer_logits["b"])
    assert not plannable(broadcast, {"clean": two, "a": one, "b": one})
    with pytest.raises(vrp.VrpError, match=r"shape"):
        run_graph(vlm, broadcast, {"clean": two, "a": one, "b": one})


def test_fits_selection_checks_rows_positions_and_finite_values(tiny_vlms) -> None:
    vlm = tiny_vlms["llava"]
    rows = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    site = Site(layer=1, component=C.RESID_POST, positions=Indices((-2, -1)))
    width = vlm.adapter.shape(vrp.Tower.LANGUAGE).d_model
    assert fits_selection(site, torch.zeros(2, 2, width), rows)
    assert fits_selection(site, torch.zeros(1, 2, width), rows)  # one row broadcasts
    assert not fits_selection(site, torch.zeros(3, 2, width), rows)
    assert not fits_selection(site, torch.zeros(2, 3, width), rows)
    assert not fits_selection(site, torch.full((2, 2, width), float("nan")), rows)


def test_the_shared_trace_keeps_only_each_batchs_own_rows(tiny_vlms) -> None:
    """The state and the sources' values are copies of their own rows, not views that keep the
    stacked batch alive (and would travel whole to a pool)."""
    from vrp.interventions import sources_and_state

    vlm = tiny_vlms["llava"]
    clean = vlm.encode(random_images(1, seed=1), QUESTIONS[:1])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[:1] * 2)
    whole = Site(layer=0, component=C.MLP_OUT)
    got = sources_and_state(vlm, {"clean": clean}, [("clean", whole)], corrupt, {1, 2},
                            ExecutionConfig())  # fmt: skip
    assert got is not None  # one question, one length: the rows stack
    read, logits, state = got
    for tensor in (read[("clean", whole)], *state.streams.values(), logits["clean"]):
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    assert read[("clean", whole)].shape[0] == 1 and state.streams[1].shape[0] == 2
