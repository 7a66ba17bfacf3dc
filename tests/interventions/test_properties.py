"""Property tests of the graph executor (hypothesis), JSON round trips and cross-process runs."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import vrp
import vrp.models as models
from tests.conftest import QUESTIONS, random_images
from vrp.core import Component, ImageTokens, Indices, LastToken, Site, Tower
from vrp.interventions import (
    Add,
    AttentionKnockout,
    Capture,
    ExecutionConfig,
    Graph,
    ImagePatchMask,
    MeanAblate,
    Patch,
    ResampleAblate,
    Scale,
    Zero,
    graph,
    mean_ablation,
    reference_pool,
    run_graph,
)

WRITABLE = [c for c in Component if c is not Component.ATTN_PATTERN]
POSITIONS = [LastToken(), ImageTokens(), Indices((-1, -3))]
SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def sites(draw: st.DrawFn, n_layers: int = 2) -> dict:
    """Site fields; the Site is built in the test body."""
    component = draw(st.sampled_from(WRITABLE))
    fields = {"layer": draw(st.integers(0, n_layers - 1)), "component": component}
    if component is Component.HEAD_OUT and draw(st.booleans()):
        fields["heads"] = (draw(st.integers(0, 3)),)
    if component is Component.MLP_NEURONS and draw(st.booleans()):
        fields["neurons"] = (draw(st.integers(0, 47)),)
    fields["positions"] = draw(st.sampled_from(POSITIONS))
    return fields


@SETTINGS
@given(site=sites(), family=st.sampled_from(models.families()))
def test_patching_a_run_with_its_own_activations_is_the_identity(tiny_vlms, site, family) -> None:
    vlm, site = tiny_vlms[family], Site(**site)
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    g = graph(Patch(site=site, source="a", run="b"), runs=("a", "b"))
    result = run_graph(vlm, g, {"a": inputs, "b": inputs})
    clean = vlm.answer_logits(inputs)
    torch.testing.assert_close(result.answer_logits["b"], clean, atol=1e-5, rtol=0)


@SETTINGS
@given(site=sites(), family=st.sampled_from(models.families()))
def test_mean_ablation_on_one_sample_equals_patching_from_it(tiny_vlms, site, family) -> None:
    vlm, site = tiny_vlms[family], Site(**site)
    donor = vlm.encode(random_images(1, seed=9), QUESTIONS[3:4])
    target = vlm.encode(random_images(2), QUESTIONS[:2])
    if site.positions == ImageTokens() or isinstance(site.positions, LastToken):
        mean = mean_ablation(vlm, site, [donor])
        ablated = run_graph(vlm, graph(mean), target).answer_logits["main"]
        patch = graph(Patch(site=site, source="donor", run="main"), runs=("donor", "main"))
        patched = run_graph(vlm, patch, {"donor": donor, "main": target}).answer_logits["main"]
        torch.testing.assert_close(ablated, patched, atol=1e-5, rtol=0)


def _rich_graph(vlm: models.VLM, inputs: models.VlmInputs) -> Graph:
    d_model = vlm.adapter.shape(Tower.LANGUAGE).d_model
    last = Site(layer=0, component=Component.RESID_POST, positions=LastToken())
    return graph(
        Capture(site=last, name="before", run="corrupt"),
        Patch(site=last, source="clean", run="corrupt"),
        ResampleAblate(site=Site(layer=1, component=Component.MLP_OUT, positions=LastToken()),
                       pool=reference_pool(vlm, Site(layer=1, component=Component.MLP_OUT,
                                                     positions=LastToken()), [inputs]), seed=3,
                       run="corrupt"),
        MeanAblate(site=Site(layer=1, component=Component.HEAD_OUT, heads=(0,), positions=LastToken()),
                   mean=torch.ones(1, 1, vlm.adapter.shape(Tower.LANGUAGE).d_head), run="clean"),
        Add(site=Site(layer=1, component=Component.RESID_PRE, positions=LastToken()),
            direction=torch.linspace(-1, 1, d_model), coefficient=0.5, run="clean"),
        Scale(site=Site(layer=0, component=Component.ATTN_OUT), factor=1.5, run="corrupt"),
        Zero(site=Site(tower=Tower.VISION, layer=1, component=Component.MLP_NEURONS, neurons=(1,)),
             run="clean"),
        AttentionKnockout(layer=0, heads=(1, 2), run="corrupt"),
        ImagePatchMask(patches=(1, 2), fill="zero", run="clean"),
        Capture(site=Site(layer=1, component=Component.ATTN_PATTERN, positions=LastToken()),
                name="pattern", run="corrupt"),
        runs=("clean", "corrupt"),
    )  # fmt: skip


def test_json_round_trip_preserves_graph_and_results(vlm, tmp_path) -> None:
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=2), QUESTIONS[2:4])
    g = _rich_graph(vlm, clean)
    path = g.save(tmp_path / "g.json")
    loaded = Graph.load(path)
    assert loaded.to_json() == g.to_json()
    runs = {"clean": clean, "corrupt": corrupt}
    a, b = run_graph(vlm, g, runs), run_graph(vlm, loaded, runs)
    for name in a.captures:
        assert torch.equal(a[name], b[name])
    for run in a.answer_logits:
        assert torch.equal(a.answer_logits[run], b.answer_logits[run])
    assert "knockout L0 heads [1, 2]" in g.render()


def test_chunked_runs_equal_one_trace(vlm) -> None:
    clean = vlm.encode(random_images(3, seed=1), QUESTIONS[:3])
    corrupt = vlm.encode(random_images(3, seed=2), QUESTIONS[1:4])
    g = _rich_graph(vlm, clean)
    runs = {"clean": clean, "corrupt": corrupt}
    one = run_graph(vlm, g, runs)
    chunked = run_graph(vlm, g, runs, ExecutionConfig(memory_budget_mb=1e-6))
    for name in one.captures:
        torch.testing.assert_close(chunked[name], one[name], atol=1e-5, rtol=0)
    for run in one.answer_logits:
        torch.testing.assert_close(
            chunked.answer_logits[run], one.answer_logits[run], atol=1e-5, rtol=0
        )


_PRODUCER = """
import torch, vrp
from vrp.core import Component, LastToken, Site
from vrp.interventions import Capture, MeanAblate, graph
vlm = vrp.load("tiny/paligemma")
site = Site(layer=1, component=Component.MLP_NEURONS, positions=LastToken())
g = graph(MeanAblate(site=site, mean=torch.randn(1, 48)), Capture(site=site, name="n"))
g.save({path!r})
"""
_CONSUMER = """
import torch, vrp
from PIL import Image
from vrp.interventions import Graph, run_graph
vlm = vrp.load("tiny/paligemma")
images = [Image.new("RGB", (32, 32), c) for c in ("red", "navy")]
inputs = vlm.encode(images, ["is there a red circle ?", "how many ?"])
r = run_graph(vlm, Graph.load({path!r}), inputs)
torch.save({{"n": r["n"], "logits": r.answer_logits["main"]}}, {out!r})
"""


def test_graph_saved_by_one_process_runs_identically_in_another(tmp_path: Path) -> None:
    path, outs = tmp_path / "g.json", [tmp_path / "a.pt", tmp_path / "b.pt"]
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PRODUCER.format(path=str(path)))], check=True
    )
    consumers = []
    for i, out in enumerate(outs):  # two processes at once: neither sees the other's state
        code = textwrap.dedent(_CONSUMER.format(path=str(path), out=str(out)))
        script = tmp_path / f"consumer{i}.py"  # nnsight reads a trace's source from its file
        script.write_text(code)
        consumers.append(subprocess.Popen([sys.executable, str(script)]))
    assert [c.wait(timeout=600) for c in consumers] == [0, 0]
    a, b = (torch.load(o) for o in outs)
    assert torch.equal(a["n"], b["n"]) and torch.equal(a["logits"], b["logits"])


def test_graph_validation_errors(vlm) -> None:
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    bad_layer = graph(Zero(site=Site(layer=9, component=Component.MLP_OUT)))
    with pytest.raises(
        vrp.GraphError, match=r"node 0 \(zero \[language.L9.mlp_out\]\).*has 2 language layers"
    ):
        run_graph(vlm, bad_layer, inputs)
    missing_run = graph(Patch(site=Site(layer=0, component=Component.RESID_POST), source="clean"))
    with pytest.raises(
        vrp.GraphError, match=r"run 'clean' is not one of the graph's runs \['main'\]"
    ):
        missing_run.validate(vlm)
    pattern_write = graph(Zero(site=Site(layer=0, component=Component.ATTN_PATTERN)))
    with pytest.raises(vrp.GraphError, match=r"attention patterns are read-only"):
        pattern_write.validate(vlm)
    out_of_sequence = graph(
        Zero(site=Site(layer=0, component=Component.MLP_OUT, positions=Indices((500,))))
    )
    with pytest.raises(vrp.GraphError, match=r"Position 500 is outside row 0"):
        run_graph(vlm, out_of_sequence, inputs)
    duplicate = graph(*(Capture(site=Site(layer=0, component=Component.MLP_OUT), name="x"),) * 2)
    with pytest.raises(vrp.GraphError, match=r"Capture names must be unique; repeated: \['x'\]"):
        duplicate.validate(vlm)
    vision_last = graph(
        Zero(
            site=Site(
                tower=Tower.VISION, layer=0, component=Component.MLP_OUT, positions=LastToken()
            )
        )
    )
    with pytest.raises(
        vrp.GraphError, match=r"on vision and projector sites use AllTokens or Indices"
    ):
        vision_last.validate(vlm)
    with pytest.raises(vrp.GraphError, match=r"no inputs for runs \['corrupt'\]"):
        run_graph(
            vlm,
            graph(
                Zero(site=Site(layer=0, component=Component.MLP_OUT), run="corrupt"),
                runs=("main", "corrupt"),
            ),
            {"main": inputs},
        )


def test_mean_shape_mismatch_is_clear(vlm) -> None:
    inputs = vlm.encode(random_images(2), QUESTIONS[:2])
    node = MeanAblate(
        site=Site(layer=0, component=Component.RESID_POST, positions=LastToken()),
        mean=torch.zeros(3),
    )
    with pytest.raises(
        vrp.ShapeError,
        match=r"stored mean has shape \(3,\).*one row of the selection has shape \(1, 32\)",
    ):
        run_graph(vlm, graph(node), inputs)


def test_json_errors() -> None:
    with pytest.raises(vrp.GraphError, match=r"Not a VRP graph"):
        Graph.from_json('{"format": "other"}')
    with pytest.raises(vrp.GraphError, match=r"does not parse"):
        Graph.from_json("{nope")
    with pytest.raises(vrp.GraphError, match=r"Unknown node kind 'melt'"):
        Graph.from_dict({"format": "vrp.graph", "version": 1, "nodes": [{"kind": "melt"}]})


def test_unknown_backend(vlm) -> None:
    inputs = vlm.encode(random_images(1), QUESTIONS[:1])
    g = graph(Capture(site=Site(layer=0, component=Component.MLP_OUT), name="x"))
    with pytest.raises(vrp.ConfigError, match=r"Unknown backend 'ndif'"):
        run_graph(vlm, g, inputs, ExecutionConfig(backend="ndif"))


_SERIALISE = """
import torch, vrp
from tests.interventions.test_properties import _rich_graph
from tests.conftest import QUESTIONS, random_images
from vrp.interventions import ExecutionConfig, run_graph
for family in vrp.families():
    vlm = vrp.load("tiny/" + family)
    clean = vlm.encode(random_images(2, seed=1), QUESTIONS[:2])
    runs = {"clean": clean, "corrupt": vlm.encode(random_images(2, seed=2), QUESTIONS[2:4])}
    g = _rich_graph(vlm, clean)
    local = run_graph(vlm, g, runs)
    remote = run_graph(vlm, g, runs, ExecutionConfig(backend="serialise"))
    assert all(torch.equal(local[n], remote[n]) for n in local.captures), family
    assert all(torch.equal(local.answer_logits[r], remote.answer_logits[r]) for r in runs), family
print("serialised runs equal")
"""


def test_serialised_runs_equal_local_runs(tmp_path: Path) -> None:
    # nnsight's remote="local" re-imports client modules, which the jaxtyping test hook cannot
    # re-run: check the round trip in a plain interpreter
    script = tmp_path / "serialise.py"
    script.write_text(_SERIALISE)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "serialised runs equal" in done.stdout


def test_url_backend_goes_to_the_server(vlm) -> None:
    # built-in models travel by their VRP name (tests/serve runs them on `vrp serve`); with no
    # server listening, the client's connection is refused
    inputs = vlm.encode(random_images(1), QUESTIONS[:1])
    g = graph(Capture(site=Site(layer=0, component=Component.MLP_OUT), name="x"))
    with pytest.raises(ConnectionRefusedError):
        run_graph(vlm, g, inputs, ExecutionConfig(backend="http://127.0.0.1:9"))
