"""Edges measured exactly: single-edge patching against edge attribution, and edge discovery."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vrp.models as models
from circuits import (
    EdgeCircuit,
    EdgeDiscoveryConfig,
    attributed,
    discover_edges,
    edge_attribution,
    edge_name,
    edge_patching,
    edge_universe,
)
from tests.conftest import random_images
from vrp.core import ConfigError
from vrp.interventions import run_graph

QUESTIONS = ["is there a red circle ?", "is there a blue square ?"] * 2


def _nudged(images: list[Image.Image], seed: int) -> list[Image.Image]:
    """The same images with a little pixel noise: a corruption small enough for first order."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        pixels = np.asarray(image, dtype=np.float64)
        noisy = np.clip(pixels + rng.normal(0, 2.0, pixels.shape), 0, 255)
        out.append(Image.fromarray(noisy.astype(np.uint8)))
    return out


def test_universe_names_every_edge_once(vlm: models.VLM) -> None:
    universe = edge_universe(vlm)
    n = vlm.adapter.n_layers
    senders, receivers = 1 + 2 * n, 2 * n + 1
    assert len(universe) == senders * receivers - (senders * (senders - 1)) // 2  # forward only
    assert len({edge_name(e) for e in universe}) == len(universe)


def test_exact_single_edges_match_attribution_to_first_order(vlm: models.VLM) -> None:
    images = random_images(4)
    clean, corrupt = vlm.encode(images, QUESTIONS), vlm.encode(_nudged(images, 0), QUESTIONS)
    metric = vlm.yes_no_margin
    universe = edge_universe(vlm)
    exact = edge_patching(vlm, clean, corrupt, universe, metric=metric)
    estimate = attributed(edge_attribution(vlm, clean, corrupt, metric), universe)
    scale = np.abs(exact.pooled()).max()
    assert scale > 0
    np.testing.assert_allclose(estimate, exact.pooled(), atol=0.1 * scale, rtol=0)
    rows = exact.to_records()
    assert len(rows) == len(universe) * 4 and {"edge", "sender", "receiver", "pair"} <= set(rows[0])


def test_discovery_curve_ends_at_the_clean_run(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["llava"]
    clean = vlm.encode(random_images(4), QUESTIONS)
    corrupt = vlm.encode(random_images(4, seed=9), QUESTIONS)
    found = discover_edges(vlm, clean, corrupt, EdgeDiscoveryConfig(threshold=0.8))
    universe = edge_universe(vlm)
    assert sorted(map(edge_name, found.ranking)) == sorted(map(edge_name, universe))
    assert found.sizes[-1] == len(universe)
    assert found.faithfulness[-1].estimate == pytest.approx(1.0, abs=1e-5)  # all kept: clean
    assert found.circuit is not None and found.circuit.faithfulness is not None
    assert found.circuit.faithfulness >= 0.8
    k = len(found.circuit.edges)
    smaller = [f.estimate for s, f in zip(found.sizes, found.faithfulness, strict=True) if s < k]
    assert all(f < 0.8 for f in smaller[-1:])  # the size below the circuit does not reach it
    # the circuit re-applied as a graph gives the faithfulness discovery measured
    g = found.circuit.graph()
    kept = vlm.yes_no_margin(
        run_graph(vlm, g, {"clean": clean, "corrupt": corrupt}).answer_logits["clean"]
    )
    gap = found.clean_metric - found.corrupt_metric
    share = (np.sign(gap) * (kept.float().numpy() - found.corrupt_metric)).sum() / np.abs(gap).sum()
    assert share == pytest.approx(found.circuit.faithfulness, abs=1e-4)
    again = EdgeCircuit.from_json(json.loads(json.dumps(found.circuit.to_json())))
    assert again == found.circuit
    assert {r["size"] for r in found.to_records()} == set(found.sizes)


def test_edge_discovery_refuses_bad_settings(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["llava"]
    clean = vlm.encode(random_images(2), QUESTIONS[:2])
    with pytest.raises(ConfigError, match=r"threshold must lie in \(0, 1\]"):
        discover_edges(vlm, clean, clean, EdgeDiscoveryConfig(threshold=1.5))
    with pytest.raises(ConfigError, match=r"at least one edge"):
        edge_patching(vlm, clean, clean, [])
    with pytest.raises(ConfigError, match=r"not a VRP edge circuit"):
        EdgeCircuit.from_json({"format": "other"})


def test_ablating_every_edge_gives_the_corrupted_metric(tiny_vlms: dict[str, models.VLM]) -> None:
    vlm = tiny_vlms["qwen2_vl"]
    clean = vlm.encode(random_images(2), QUESTIONS[:2])
    corrupt = vlm.encode(random_images(2, seed=3), QUESTIONS[:2])
    empty = EdgeCircuit(edges=(), universe=edge_universe(vlm))
    logits = run_graph(vlm, empty.graph(), {"clean": clean, "corrupt": corrupt}).answer_logits
    torch.testing.assert_close(logits["clean"], logits["corrupt"], atol=1e-5, rtol=0)


def test_edge_patching_under_a_memory_budget_is_the_same(
    tiny_vlms: dict[str, models.VLM], trace_rows: list[int]
) -> None:
    """A budget of about one row per trace splits every trace's rows (4 rows: 4 traces where
    there was 1); the effects do not move. Discovery passes its `execution` on as well."""
    from vrp.interventions import ExecutionConfig

    vlm = tiny_vlms["llava"]
    images = random_images(4)
    clean, corrupt = vlm.encode(images, QUESTIONS), vlm.encode(random_images(4, seed=3), QUESTIONS)
    edges = edge_universe(vlm)[:6]
    chunks = trace_rows
    whole = edge_patching(vlm, clean, corrupt, edges)
    assert chunks == [4]
    chunks.clear()
    tight = ExecutionConfig(memory_budget_mb=1e-3)
    split = edge_patching(vlm, clean, corrupt, edges, config=tight)
    assert chunks == [1, 1, 1, 1]
    np.testing.assert_allclose(split.effects, whole.effects, atol=1e-5, rtol=0)
    assert np.abs(whole.effects).max() > 1e-4
    chunks.clear()
    discover_edges(vlm, clean, corrupt, EdgeDiscoveryConfig(sizes=(1,)), execution=tight)
    assert chunks[0] == 4 and set(chunks[1:]) == {1}  # the ranking's clean run, then checks
