"""Answer-to-image attention maps: gathering, head averaging and the top-K-head map."""

import pytest
import torch

from vrp.core import ConfigError, ShapeError, SiteError
from vrp.signals import (
    AttentionMaps,
    MassComponents,
    attention_structure,
    average_heads,
    cluster_count,
    image_attention,
    spatial_entropy,
    top_head_map,
    top_heads,
)


def _planted_pattern() -> tuple[torch.Tensor, torch.Tensor]:
    """One sample, 2 heads, 6 positions: text, 4 image tokens (positions 1..4), answer at 5."""
    pattern = torch.zeros(1, 2, 6, 6)
    pattern[0, 0, 5] = torch.tensor([0.2, 0.4, 0.1, 0.1, 0.0, 0.2])
    pattern[0, 1, 5] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    pattern[0, :, 4] = torch.tensor([0.0, 0.25, 0.25, 0.25, 0.25, 0.0])  # a second query row
    mask = torch.tensor([[False, True, True, True, True, False]])
    return pattern, mask


def test_image_attention_reads_the_answer_row_at_the_image_keys() -> None:
    pattern, mask = _planted_pattern()
    maps = image_attention([pattern, 2 * pattern], mask, torch.tensor([-1]), (2, 2))
    assert maps.shape == (1, 2, 2, 2, 2)  # batch layer head grid_h grid_w
    torch.testing.assert_close(maps[0, 0, 0], torch.tensor([[0.4, 0.1], [0.1, 0.0]]))
    torch.testing.assert_close(maps[0, 0, 1], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(maps[0, 1], 2 * maps[0, 0])


def test_a_query_mask_averages_its_rows() -> None:
    pattern, mask = _planted_pattern()
    queries = torch.tensor([[False, False, False, False, True, True]])
    maps = image_attention([pattern], mask, queries, (2, 2))
    expected = (torch.tensor([0.4, 0.1, 0.1, 0.0]) + 0.25) / 2
    torch.testing.assert_close(maps[0, 0, 0].flatten(), expected)


def test_average_heads_gives_per_layer_maps_and_their_mean() -> None:
    pattern, mask = _planted_pattern()
    head_maps = image_attention([pattern, 3 * pattern], mask, torch.tensor([5]), (2, 2))
    maps = average_heads(head_maps, layers=[10, 11])
    layer0 = torch.tensor([[0.2, 0.05], [0.05, 0.5]])
    torch.testing.assert_close(maps.per_layer[0, 0], layer0)
    torch.testing.assert_close(maps.mean[0], 2 * layer0)
    assert maps.layers == (10, 11) and maps.heads is None
    only_first = average_heads(head_maps, heads=[0])
    torch.testing.assert_close(only_first.per_layer[0, 0], head_maps[0, 0, 0])
    assert only_first.heads == (0,)


def test_top_heads_rank_by_magnitude_or_sign_with_stable_ties() -> None:
    effects = torch.tensor([[0.5, -2.0, 1.0], [1.0, 0.0, 3.0]])
    assert top_heads(effects, 3) == ((1, 2), (0, 1), (0, 2))
    assert top_heads(effects, 3, by="signed") == ((1, 2), (0, 2), (1, 0))


def test_top_head_map_averages_the_chosen_heads() -> None:
    head_maps = torch.rand(2, 3, 4, 5, 5)
    effects = torch.zeros(3, 4)
    effects[2, 1], effects[0, 3] = 5.0, -4.0
    top = top_head_map(head_maps, effects, 2)
    assert top.heads == ((2, 1), (0, 3))
    torch.testing.assert_close(top.map, (head_maps[:, 2, 1] + head_maps[:, 0, 3]) / 2)
    torch.testing.assert_close(top.entropy.nats, spatial_entropy(top.map).nats)


def test_image_token_count_must_fill_the_grid() -> None:
    pattern, mask = _planted_pattern()
    with pytest.raises(ShapeError, match=r"grid_h \* grid_w = 3 \* 3 = 9 image tokens.*\[4\]"):
        image_attention([pattern], mask, torch.tensor([5]), (3, 3))


def test_patterns_must_agree_in_shape() -> None:
    pattern, mask = _planted_pattern()
    with pytest.raises(ShapeError, match=r"pattern 1 has \(1, 1, 6, 6\)"):
        image_attention([pattern, pattern[:, :1]], mask, torch.tensor([5]), (2, 2))
    with pytest.raises(ShapeError, match="it is empty"):
        image_attention([], mask, torch.tensor([5]), (2, 2))


def test_queries_must_exist_and_be_in_range() -> None:
    pattern, mask = _planted_pattern()
    with pytest.raises(SiteError, match=r"query positions must lie in -6..5 .*, but got \[6\]"):
        image_attention([pattern], mask, torch.tensor([6]), (2, 2))
    with pytest.raises(ShapeError, match=r"rows \[0\] mark none"):
        image_attention([pattern], mask, torch.zeros(1, 6, dtype=torch.bool), (2, 2))


@pytest.mark.usefixtures("without_runtime_checks")
def test_mask_and_queries_must_match_the_patterns_rows() -> None:
    pattern, mask = _planted_pattern()
    patterns = [pattern.expand(3, -1, -1, -1)] * 2  # batch 3
    rows = mask.expand(3, -1)
    with pytest.raises(
        ShapeError, match=r"image_mask must have shape \(3, 6\).*has shape \(1, 6\)"
    ):
        image_attention(patterns, mask, torch.tensor([-1, -1, -1]), (2, 2))  # used to give 1 row
    with pytest.raises(ShapeError, match=r"queries must have shape \(3,\).*has shape \(1,\)"):
        image_attention(patterns, rows, torch.tensor([-1]), (2, 2))  # used to reuse row 0's
    with pytest.raises(
        ShapeError, match=r"queries must have shape \(3, 6\) \(a \[batch seq\] mask"
    ):
        image_attention(patterns, rows, torch.ones(1, 6, dtype=torch.bool), (2, 2))


def test_head_and_k_out_of_range() -> None:
    with pytest.raises(SiteError, match=r"head indices in 0..3, but got \[4\]"):
        average_heads(torch.rand(1, 2, 4, 3, 3), heads=[4])
    with pytest.raises(ConfigError, match=r"k must lie in 1..6 \(layer x head\), but got 7"):
        top_heads(torch.rand(2, 3), 7)


@pytest.mark.usefixtures("without_runtime_checks")
def test_effects_must_match_the_maps_layers_and_heads() -> None:
    with pytest.raises(ShapeError, match=r"effects must be \[layer head\] = \(3, 4\)"):
        top_head_map(torch.rand(1, 3, 4, 2, 2), torch.rand(2, 4), 1)


def test_attention_structure_bundles_the_stage1_signals() -> None:
    per_layer = torch.rand(2, 4, 6, 6) + 0.01
    per_layer[:, 2:, 1, 1] = 50.0  # layers 2 and 3 lock onto one cell
    maps = AttentionMaps(
        per_layer=per_layer, mean=per_layer.mean(1), layers=(3, 4, 5, 6), heads=None
    )
    structure = attention_structure(maps, late_window=1)
    torch.testing.assert_close(structure.entropy.nats, spatial_entropy(maps.mean).nats)
    torch.testing.assert_close(structure.layer_entropy.nats, spatial_entropy(per_layer).nats)
    assert structure.evolution.early_locking_layer.tolist() == [5, 5]
    expected = cluster_count(maps.mean, method=MassComponents())
    assert structure.clusters_components.tolist() == expected.tolist()
