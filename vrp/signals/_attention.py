"""Stage 1 inputs: attention from the answer position(s) to the image tokens, on the patch grid.

Everything in Stage 1 (the per-layer maps m^(l), their layer average M, the map of the top-K
heads) is a reduction of one ``[batch layer head grid_h grid_w]`` tensor, so `image_attention`
reads each layer's pattern once and keeps only the answer rows and the image columns; the caller
can drop the patterns (``seq x key`` per head and layer). The patterns must come from eager
attention: SDPA and flash kernels return no weights.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from vrp.core import ConfigError, ShapeError, SiteError
from vrp.core.types import Pattern

from ._checks import check_shape, float_dtype, layer_labels, upcast
from ._entropy import SpatialEntropy, spatial_entropy
from ._types import HeadMaps, LayerMaps

Queries = Bool[Tensor, "batch seq"] | Int[Tensor, " batch"]
"""The answer position(s): a mask over query positions, or one position per row (negative counts
from the end, so ``-1`` is the last token)."""


@dataclass(frozen=True, kw_only=True)
class AttentionMaps:
    """Head-averaged attention from the answer position(s) to the image tokens.

    The maps hold raw attention mass (each sums to the share of attention that goes to the image);
    the entropy normalises them.
    """

    per_layer: LayerMaps  # m^(l), one map per layer
    mean: Float[Tensor, "batch grid_h grid_w"]  # M, the average of per_layer over its layers
    layers: tuple[int, ...]  # the layer index of each position along per_layer's layer axis
    heads: tuple[int, ...] | None  # the heads averaged in every layer; None means all of them


@dataclass(frozen=True, kw_only=True)
class TopHeads:
    """The combined attention map of the K heads with the largest direct effect on the answer."""

    heads: tuple[tuple[int, int], ...]  # (layer position, head), best first
    map: Float[Tensor, "batch grid_h grid_w"]  # mean of the K heads' maps
    entropy: SpatialEntropy  # spatial entropy of `map`


def image_attention(
    patterns: Sequence[Pattern],
    image_mask: Bool[Tensor, "batch key"],
    queries: Queries,
    grid: tuple[int, int],
) -> HeadMaps:
    """Gathers the attention from the answer position(s) to the image tokens, per layer and head.

    Args:
      patterns: one attention pattern per layer (softmax weights, eager attention), in layer order.
      image_mask: True at the key positions of the image tokens; every row must hold exactly
        ``grid_h * grid_w`` of them, in raster order of the patch grid.
      queries: the answer position(s) to read from. With several positions in a row, their
        attention rows are averaged.
      grid: the patch grid ``(grid_h, grid_w)`` (LLaVA-1.5 (24, 24), PaliGemma-3B (16, 16),
        Qwen2-VL ``(h // 2, w // 2)`` from ``image_grid_thw`` after the 2x2 merge).

    Returns:
      The attention weights, ``[batch layer head grid_h grid_w]``, float32 at least.

    Raises:
      ShapeError: no patterns, patterns of different shapes, an `image_mask` or `queries` whose
        rows do not match the patterns' (nothing is broadcast), a row with no query position,
        or an image-token count that does not fill the grid.
      SiteError: a query position outside the sequence.
    """
    if len(patterns) == 0:
        raise ShapeError("patterns must hold one attention pattern per layer, but it is empty.")
    first = patterns[0]
    for i, pattern in enumerate(patterns):
        if pattern.shape != first.shape:
            raise ShapeError(
                f"every layer's pattern must have the shape of layer 0, {tuple(first.shape)}, "
                f"but pattern {i} has {tuple(pattern.shape)}."
            )
    batch, _, seq, key = first.shape
    check_shape(image_mask, (batch, key), "image_mask", "[batch key] like the patterns")
    weights = _query_weights(queries, batch, seq)
    weights = weights.to(device=first.device, dtype=float_dtype(first.dtype))
    index = _image_index(image_mask, grid).to(first.device)
    gather = index[:, None, :].expand(-1, first.shape[1], -1)
    maps = [
        torch.einsum("bhsk,bs->bhk", upcast(pattern), weights).gather(-1, gather)
        for pattern in patterns
    ]
    return torch.stack(maps, dim=1).unflatten(-1, grid)


def average_heads(
    head_maps: HeadMaps,
    *,
    heads: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
) -> AttentionMaps:
    """Averages per-head maps over heads (all, or a subset), giving m^(l) and their mean M.

    Args:
      head_maps: the output of `image_attention`.
      heads: the head indices to average in every layer; None averages all heads.
      layers: the layer index of each position along the layer axis; None means 0, 1, 2, ...

    Returns:
      The per-layer maps and their layer average, with their coordinates.

    Raises:
      SiteError: a head index outside ``0 .. head - 1``.
      ShapeError: `layers` does not name one layer per position of the layer axis.
    """
    labels = layer_labels(head_maps.shape[1], layers)
    chosen = head_maps
    if heads is not None:
        n_head = head_maps.shape[2]
        bad = [h for h in heads if not 0 <= h < n_head]
        if len(heads) == 0 or bad:
            raise SiteError(
                f"heads must be a non-empty list of head indices in 0..{n_head - 1}, but got "
                f"{list(heads)}. Pass None to average all heads."
            )
        chosen = head_maps[:, :, list(heads)]
    per_layer = chosen.mean(dim=2)
    return AttentionMaps(
        per_layer=per_layer,
        mean=per_layer.mean(dim=1),
        layers=labels,
        heads=None if heads is None else tuple(heads),
    )


def top_heads(
    effects: Float[Tensor, "layer head"], k: int, *, by: Literal["abs", "signed"] = "abs"
) -> tuple[tuple[int, int], ...]:
    """Ranks heads by their direct effect on the answer logit and returns the top `k`.

    Args:
      effects: each head's direct effect on the answer logit (computed elsewhere).
      k: how many heads to keep, ``1 .. layer * head``.
      by: "abs" ranks by magnitude (heads that push towards or away from the answer), "signed"
        ranks by the signed effect (heads that push towards it).

    Returns:
      ``(layer position, head)`` pairs, largest effect first; ties go to the earlier layer,
      then the earlier head.

    Raises:
      ConfigError: `k` out of range.
    """
    n_layer, n_head = effects.shape
    if not 1 <= k <= n_layer * n_head:
        raise ConfigError(f"k must lie in 1..{n_layer * n_head} (layer x head), but got {k}.")
    score = effects.abs() if by == "abs" else effects
    order = torch.argsort(score.flatten(), descending=True, stable=True)[:k]
    return tuple((int(i) // n_head, int(i) % n_head) for i in order)


def top_head_map(
    head_maps: HeadMaps,
    effects: Float[Tensor, "layer head"],
    k: int,
    *,
    by: Literal["abs", "signed"] = "abs",
) -> TopHeads:
    """Combines the maps of the `k` heads with the largest direct effect, and scores its entropy.

    Args:
      head_maps: the output of `image_attention`.
      effects: each head's direct effect on the answer logit, on the same layer and head axes.
      k: how many heads to combine (their maps are averaged with equal weight).
      by: the ranking, as in `top_heads`.

    Returns:
      The chosen heads, their combined map and its spatial entropy.

    Raises:
      ShapeError: `effects` does not match the layer and head axes of `head_maps`.
      ConfigError: `k` out of range.
    """
    if tuple(effects.shape) != tuple(head_maps.shape[1:3]):
        raise ShapeError(
            f"effects must be [layer head] = {tuple(head_maps.shape[1:3])} like head_maps, but it "
            f"is {tuple(effects.shape)}. Compute the effects over the same layers as the maps."
        )
    heads = top_heads(effects, k, by=by)
    stacked = torch.stack([head_maps[:, layer, head] for layer, head in heads], dim=1)
    combined = stacked.mean(dim=1)
    return TopHeads(heads=heads, map=combined, entropy=spatial_entropy(combined))


def _query_weights(queries: Tensor, batch: int, seq: int) -> Tensor:
    """Returns [batch seq] weights that average each row's query positions."""
    if queries.dtype == torch.bool:
        check_shape(queries, (batch, seq), "queries", "a [batch seq] mask over query positions")
    else:
        check_shape(queries, (batch,), "queries", "[batch], one query position per row")
        positions = queries.long()
        if bool(((positions < -seq) | (positions >= seq)).any()):
            raise SiteError(
                f"query positions must lie in -{seq}..{seq - 1} (the pattern's query axis), but "
                f"got {positions.tolist()}."
            )
        mask = torch.zeros(batch, seq, dtype=torch.bool, device=queries.device)
        mask[torch.arange(batch, device=queries.device), positions % seq] = True
        queries = mask
    counts = queries.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise ShapeError(
            "every row of queries must mark at least one answer position, but rows "
            f"{torch.nonzero(counts[:, 0] == 0)[:, 0].tolist()} mark none."
        )
    return queries.double() / counts


def _image_index(image_mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """Returns the [batch patch] key indices of the image tokens, in raster order."""
    if grid[0] < 1 or grid[1] < 1:
        raise ShapeError(f"grid must be (grid_h, grid_w) with both >= 1, but got {grid}.")
    n_cells = grid[0] * grid[1]
    counts = image_mask.sum(dim=1)
    if bool((counts != n_cells).any()):
        raise ShapeError(
            f"every row of image_mask must mark grid_h * grid_w = {grid[0]} * {grid[1]} = "
            f"{n_cells} image tokens, but the rows mark {sorted(set(counts.tolist()))}. Check the "
            "grid of this model family, or pass one sample at a time when resolutions differ."
        )
    return image_mask.nonzero()[:, 1].view(image_mask.shape[0], n_cells)
