"""Attention patterns and mask edits computed from an attention block's inputs (private).

A pattern is ``softmax(q k^T * d_head^-0.5 + mask)``; transformers returns it only under eager
attention, which would slow and enlarge the whole model. Here it is recomputed, at the requested
layers only, from what the block receives (its mask and rotary tables) and from its own query and
key projections, so the model keeps SDPA (or flash) attention everywhere. The arithmetic is the
eager path's (scores in the model's dtype, softmax in float32, then back), so both agree to
float rounding. Knockouts edit the same mask; SDPA skips the causal mask when nothing is padded,
so one is built for it here.
"""

from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..core import Site, SiteError, Tower
from ._protocol import MaskEdit, TowerShape


def block_inputs(block: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Inside a trace: the attention block's (args, kwargs)."""
    args, kwargs = block.inputs
    return tuple(args), dict(kwargs)


def _hidden(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


def additive_mask(
    mask: Tensor | None, queries: int, keys: int, *, causal: bool, like: Tensor
) -> Float[Tensor, "batch _ query key"] | None:
    """The mask as eager attention adds it: 0 where a query may attend, the dtype's minimum
    elsewhere. A boolean mask (SDPA's) is converted; a 2-D ``batch key`` padding mask (flash
    attention's: 1 for a real token) is combined with the causal mask; None means causal (a
    decoder) or no mask."""
    if mask is None and not causal:
        return None
    if mask is not None and mask.dim() == 2:  # flash attention: padding only
        padding = mask[:, None, None, -keys:].bool()
        mask = padding & causal_mask(queries, keys, device=like.device) if causal else padding
    if mask is None:
        mask = causal_mask(queries, keys, device=like.device)[None, None]
    if mask.dtype == torch.bool:
        blocked = torch.tensor(torch.finfo(like.dtype).min, dtype=like.dtype, device=like.device)
        return torch.where(mask, torch.zeros((), dtype=like.dtype, device=like.device), blocked)
    return mask[..., :keys]


def causal_mask(queries: int, keys: int, *, device: torch.device) -> Bool[Tensor, "query key"]:
    """True where query i (the last `queries` of `keys` positions) may attend to key j."""
    offset = keys - queries
    rows = torch.arange(queries, device=device)[:, None] + offset
    return torch.arange(keys, device=device)[None, :] <= rows


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary positions on ``batch head seq d_head`` with tables ``batch seq d_head``."""
    half = x.shape[-1] // 2
    turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos[:, None] + turned * sin[:, None]


def pattern(
    query: Tensor,
    key: Tensor,
    shape: TowerShape,
    mask: Tensor | None,
    rotary: tuple[Tensor, Tensor] | None,
) -> Float[Tensor, "batch head query key"]:
    """Attention weights from the query and key projections' outputs (``batch seq heads*d_head``).

    Args:
      query: the query projection's output.
      key: the key projection's output (fewer heads under grouped-query attention).
      shape: the tower's sizes (heads and head width).
      mask: the additive mask (see `additive_mask`), or None.
      rotary: the (cos, sin) tables the block received, or None for a tower without rotary
        positions.
    """
    batch, seq = query.shape[:2]
    q = query.view(batch, seq, -1, shape.d_head).transpose(1, 2)
    k = key.view(batch, key.shape[1], -1, shape.d_head).transpose(1, 2)
    if rotary is not None:
        cos, sin = rotary
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    k = k.repeat_interleave(shape.n_heads // k.shape[1], dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) * shape.d_head**-0.5
    if mask is not None:
        scores = scores + mask
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)


def _rotate_flat(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary positions on ``seq head d_head`` with tables ``seq d_head``, in float32 and back
    (as a flat vision tower applies them)."""
    half = x.shape[-1] // 2
    wide = x.float()
    turned = torch.cat((-wide[..., half:], wide[..., :half]), dim=-1)
    return (wide * cos[:, None].float() + turned * sin[:, None].float()).to(x.dtype)


def flat_pattern(
    qkv: Float[Tensor, "seq three_d_model"],
    shape: TowerShape,
    bounds: Tensor,
    rotary: tuple[Tensor, Tensor],
) -> Float[Tensor, "head seq seq"]:
    """Attention weights of a flat vision tower (Qwen2-VL's) from its fused qkv projection.

    The tower runs all images' patches as one sequence and attends within the segments that
    `bounds` (cumulative lengths: 0, n_1, n_1 + n_2, ...) delimit: one per image, or one per
    window. Weights across segments are 0, as the tower computes each segment on its own.
    """
    seq = qkv.shape[0]
    query, key, _ = qkv.reshape(seq, 3, shape.n_heads, shape.d_head).unbind(1)
    cos, sin = rotary
    query, key = _rotate_flat(query, cos, sin), _rotate_flat(key, cos, sin)
    scores = torch.einsum("qhd,khd->hqk", query, key) * shape.d_head**-0.5
    lengths = bounds.diff().to(qkv.device)
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=qkv.device), lengths)
    apart = segment[:, None] != segment[None, :]
    scores = scores.masked_fill(apart, float("-inf"))
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(qkv.dtype)


def read_pattern(
    block: Any, query_proj: Any, key_proj: Any, site: Site, shape: TowerShape, *, causal: bool
) -> Tensor:
    """Inside a trace: the pattern at `site` from the block's inputs and its q / k projections.

    `causal`: the block attends causally where its mask does not say otherwise (no mask, as
    SDPA's without padding, or flash attention's 2-D padding mask); False for a bidirectional
    prompt (PaliGemma's prefix) and for vision towers.
    """
    args, kwargs = block_inputs(block)
    hidden = _hidden(args, kwargs)
    query, key = query_proj.output, key_proj.output
    mask = additive_mask(
        kwargs.get("attention_mask"), hidden.shape[1], key.shape[1], causal=causal, like=query
    )
    rotary = kwargs.get("position_embeddings") if site.tower is Tower.LANGUAGE else None
    return pattern(query, key, shape, mask, rotary)


def edit_mask(block: Any, edit: MaskEdit, where: str) -> None:
    """Inside a trace: replaces the block's attention mask by `edit(mask)`; a block given none
    (SDPA with no padding: causal by flag) gets the explicit causal mask first.

    Raises:
      SiteError: the block's mask is not a 4-D tensor (flash attention's 2-D padding mask).
    """
    args, kwargs = block_inputs(block)
    mask = kwargs.get("attention_mask")
    if mask is None:
        hidden = _hidden(args, kwargs)
        seq = hidden.shape[1]
        mask = causal_mask(seq, seq, device=hidden.device)[None, None].expand(
            hidden.shape[0], 1, seq, seq
        )
    if not isinstance(mask, Tensor) or mask.dim() != 4:
        raise SiteError(
            f"{where} received no 4-D attention mask (found {type(mask).__name__}"
            f"{f' of shape {tuple(mask.shape)}' if isinstance(mask, Tensor) else ''}); attention "
            "knockouts need eager or SDPA attention. Load with attn_implementation='sdpa'."
        )
    block.inputs = (args, {**kwargs, "attention_mask": edit(mask)})
