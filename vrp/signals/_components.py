"""Stage 2 component attribution: the answer logit written by each attention and MLP block.

Each layer adds ``attn_out + mlp_out`` to the residual stream; the direct logit contribution of a
component is its output projected on an unembedding direction (``W_U[:, token]``, or
``W_U[:, yes] - W_U[:, no]`` for a margin). The final norm sits between the residual and W_U and is
not linear, so we linearise it the usual way (TransformerLens's ``apply_ln_to_stack``): its divisor
is frozen at the value it takes on the final residual of each row, and its gain is folded into the
direction. Then the contributions of all components (plus the embedding's) add up exactly to the
direction's logit. Without `gamma` and `scale` the plain dot product is used, which ranks
components the same way within a row but is not on the logit's scale.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from vrp.core import SignalError

from ._checks import check_ids, layer_labels, upcast

Stack = Float[Tensor, "batch layer d_model"]


@dataclass(frozen=True, kw_only=True)
class ComponentAttribution:
    """Direct logit contributions of each layer's attention and MLP outputs (answer position)."""

    attn: Float[Tensor, "batch layer"]  # attention output . direction (linearised norm)
    mlp: Float[Tensor, "batch layer"]  # MLP output . direction (linearised norm)
    mlp_share: Float[Tensor, " batch"]  # sum|mlp| / (sum|mlp| + sum|attn|); NaN if both are 0
    layers: tuple[int, ...]  # the layer index of each position along the layer axis


def unembed_direction(
    unembed: Float[Tensor, "d_model vocab"],
    target: Int[Tensor, " batch"],
    foil: Int[Tensor, " batch"] | None = None,
) -> Float[Tensor, "batch d_model"]:
    """The unembedding direction of each row's target token, or of target minus foil.

    Args:
      unembed: W_U (HF's ``lm_head.weight.T``).
      target: the token whose logit to explain (e.g. the correct answer, or "yes").
      foil: a token to contrast with (e.g. "no"); None explains the target's logit alone.

    Returns:
      ``W_U[:, target]`` or ``W_U[:, target] - W_U[:, foil]``, one row per sample.

    Raises:
      SignalError: an id outside the vocabulary.
    """
    check_ids(target, unembed.shape[1], "target")
    direction = unembed[:, target].T
    if foil is None:
        return direction
    check_ids(foil, unembed.shape[1], "foil")
    return direction - unembed[:, foil].T


def component_attribution(
    attn_out: Stack,
    mlp_out: Stack,
    direction: Float[Tensor, "batch d_model"],
    *,
    gamma: Float[Tensor, " d_model"] | None = None,
    scale: Float[Tensor, " batch"] | None = None,
    center: bool = False,
    layers: Sequence[int] | None = None,
) -> ComponentAttribution:
    """Direct logit contribution of each layer's attention and MLP output, and the MLP share.

    The contribution of an output ``x`` is ``(c(x) * gamma / scale) . direction``, where ``c``
    subtracts the mean over ``d_model`` when `center` is set (LayerNorm) and is the identity
    otherwise (RMSNorm).

    Args:
      attn_out: each layer's attention output at the answer position (what it adds to the
        residual stream).
      mlp_out: each layer's MLP output there.
      direction: the unembedding direction per row (see `unembed_direction`).
      gamma: the final norm's effective gain (``weight``; for Gemma's RMSNorm ``1 + weight``);
        None for a gain of 1.
      scale: the final norm's divisor on each row's final residual (RMSNorm
        ``sqrt(mean(x**2) + eps)``, LayerNorm ``sqrt(var(x) + eps)``); None for 1.
      center: subtract each output's mean over ``d_model`` first, as LayerNorm does.
      layers: the layer index of each position along the layer axis; None means 0, 1, 2, ...

    Returns:
      The contributions per layer and the MLP share of their absolute sum.

    Raises:
      SignalError: `scale` is not positive everywhere.
    """
    labels = layer_labels(attn_out.shape[1], layers)
    if scale is not None and not bool((scale > 0).all()):
        raise SignalError(
            f"scale must be the final norm's positive divisor per row, but its minimum is "
            f"{float(scale.min()):.3g}."
        )
    weights = upcast(direction)
    if gamma is not None:
        weights = weights * upcast(gamma)
    if scale is not None:
        weights = weights / upcast(scale)[:, None]
    attn, mlp = (_project(out, weights, center) for out in (attn_out, mlp_out))
    mlp_total, attn_total = mlp.abs().sum(dim=1), attn.abs().sum(dim=1)
    return ComponentAttribution(
        attn=attn, mlp=mlp, mlp_share=mlp_total / (mlp_total + attn_total), layers=labels
    )


def _project(out: Tensor, weights: Tensor, center: bool) -> Tensor:
    """Returns the [batch layer] projections of `out` on each row's `weights`."""
    out = upcast(out).to(weights.dtype)
    if center:
        out = out - out.mean(dim=-1, keepdim=True)
    return torch.einsum("bld,bd->bl", out, weights)
