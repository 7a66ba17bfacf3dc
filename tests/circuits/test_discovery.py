"""Circuit discovery and hypothesis tests on the LLaVA organism, with answers known by
construction: under causal attention LLaVA's image tokens come before the question, so an object
swap leaves every image-position value unchanged, and patching those nodes changes nothing."""

import json

import numpy as np
import pytest
import torch

from circuits import (
    Circuit,
    DiscoveryConfig,
    HypothesisConfig,
    Node,
    check_hypothesis,
    corrupt_pairs,
    discover_circuit,
    random_like,
    universe,
    usable_pairs,
    variant_metrics,
)
from circuits._discovery import kept_share
from vrp import Component, ConfigError
from vrp.interventions import Graph, Patch, run_graph
from vrp.organisms import evaluation_set


@pytest.fixture(scope="module")
def setup(request):
    import vrp

    vlm = vrp.load("organism/llava")
    data = evaluation_set(n_per_split=12, n_counting=0, n_spatial=0, seed=7)
    pairs = corrupt_pairs([data[i] for i in range(len(data))], kind="object", seed=0)
    _, clean, corrupt = usable_pairs(vlm, pairs)
    return vlm, clean, corrupt


@pytest.fixture(scope="module")
def found(setup):
    vlm, clean, corrupt = setup
    return discover_circuit(vlm, clean, corrupt)


def test_the_curve_ends_at_one_and_image_nodes_rank_last(setup, found) -> None:
    vlm, clean, _ = setup
    assert clean.batch_size >= 8
    assert found.sizes[-1] == len(found.ranking) == 4 * 2 * 3
    assert found.faithfulness[-1].estimate == pytest.approx(1.0)  # nothing ablated: the clean run
    image = [i for i, n in enumerate(found.ranking) if n.positions == "image"]
    assert len(image) == 4 * 2
    assert all(found.attribution[i] == 0 for i in image)  # planted: unchanged by an object swap
    nonzero = sum(a != 0 for a in found.attribution)
    assert min(image) >= nonzero  # ranked after every node with an effect
    assert found.circuit is not None
    assert found.circuit.faithfulness >= 0.8
    assert all(n.positions != "image" for n in found.circuit.nodes)
    rows = found.to_records()
    assert [r["size"] for r in rows] == list(found.sizes)
    assert " ".join(r["added"] for r in rows).split() == [str(n) for n in found.ranking]


def test_a_circuit_round_trips_and_reapplies_as_a_graph(setup, found) -> None:
    vlm, clean, corrupt = setup
    circuit = found.circuit
    again = Circuit.from_json(json.loads(json.dumps(circuit.to_json())))
    assert again == circuit
    logits = run_graph(vlm, again.graph(clean), {"clean": clean, "corrupt": corrupt}).answer_logits
    kept = vlm.yes_no_margin(logits["clean"]).numpy()
    share = kept_share(kept, found.clean_metric, found.none_metric, seed=0)
    assert share.estimate == pytest.approx(circuit.faithfulness, abs=1e-6)
    with pytest.raises(ConfigError, match="not a VRP circuit"):
        Circuit.from_json({"nodes": []})
    with pytest.raises(ConfigError, match="not in its universe"):
        Circuit(nodes=(Node(layer=9, component=Component.MLP_OUT, positions="answer"),),
                universe=circuit.universe)  # fmt: skip


def test_variants_equal_a_hand_built_graph(setup) -> None:
    vlm, clean, corrupt = setup
    nodes = [Node(layer=0, component=Component.ATTN_OUT, positions="question"),
             Node(layer=2, component=Component.MLP_OUT, positions="answer")]  # fmt: skip
    got = variant_metrics(vlm, clean, corrupt, {"v": nodes}, vlm.yes_no_margin)
    layout = tuple(bool(v) for v in clean.image_mask[0].tolist())
    patches = tuple(Patch(site=n.site(layout), source="corrupt", run="v") for n in nodes)
    graph = Graph(nodes=patches, runs=("v", "corrupt"))
    logits = run_graph(vlm, graph, {"v": clean, "corrupt": corrupt}).answer_logits
    torch.testing.assert_close(got["v"], vlm.yes_no_margin(logits["v"]))
    torch.testing.assert_close(got["corrupt"], vlm.yes_no_margin(logits["corrupt"]))


def test_hypothesis_on_planted_sets(setup) -> None:
    """Keeping every non-image attention and MLP node keeps exactly all of the behaviour; the
    image nodes alone are neither necessary nor sufficient (they carry nothing here)."""
    vlm, clean, corrupt = setup
    pool = universe(vlm)
    text = [n for n in pool if n.positions != "image"]
    config = HypothesisConfig(n_random=5, sufficiency=0.99)
    with pytest.raises(ConfigError, match="as many other nodes per layer"):
        check_hypothesis(vlm, clean, corrupt, text, config)
    attn = [n for n in text if n.component is Component.ATTN_OUT]
    result = check_hypothesis(vlm, clean, corrupt, attn, config)
    assert result.necessity.share.estimate > 0.5
    image = [n for n in pool if n.positions == "image"]
    nothing = check_hypothesis(vlm, clean, corrupt, image[:4], config)
    assert nothing.necessity.share.estimate == pytest.approx(0.0, abs=1e-9)
    assert not nothing.necessity.holds and not nothing.sufficiency.holds
    rows = result.to_records()
    assert len(rows) == 2 * (1 + 5) and {r["test"] for r in rows} == {"necessity", "sufficiency"}


def test_random_sets_keep_the_layer_profile(setup) -> None:
    vlm, _, _ = setup
    pool = universe(vlm, components=(Component.ATTN_OUT, Component.MLP_OUT, Component.HEAD_OUT))
    target = [n for n in pool if n.layer in (1, 3) and n.positions == "answer"][:5]
    draws = random_like(target, pool, 10, seed=3)
    assert draws == random_like(target, pool, 10, seed=3)
    profile = sorted(n.layer for n in target)
    for draw in draws:
        assert sorted(n.layer for n in draw) == profile and not set(draw) & set(target)
    assert len({tuple(d) for d in draws}) > 1


def test_bad_discovery_settings(setup) -> None:
    vlm, clean, corrupt = setup
    with pytest.raises(ConfigError, match=r"threshold must lie in \(0, 1\]"):
        discover_circuit(vlm, clean, corrupt, DiscoveryConfig(threshold=1.5))
    with pytest.raises(ConfigError, match="sizes must lie in 1..24"):
        discover_circuit(vlm, clean, corrupt, DiscoveryConfig(sizes=(0, 3)))
    with pytest.raises(ConfigError, match="at least 2"):
        discover_circuit(vlm, clean.rows([0]), corrupt.rows([0]))
    with pytest.raises(ConfigError, match="names its head"):
        Node(layer=0, component=Component.HEAD_OUT, positions="answer")


def test_head_nodes(setup) -> None:
    vlm, clean, corrupt = setup
    config = DiscoveryConfig(components=(Component.HEAD_OUT, Component.MLP_OUT), sizes=(1, 4))
    heads = discover_circuit(vlm, clean, corrupt, config)
    expected = universe(vlm, components=config.components)
    assert sorted(map(str, heads.ranking)) == sorted(map(str, expected))
    assert any(n.head is not None for n in heads.ranking[:4])
    assert np.isfinite(heads.attribution).all()
