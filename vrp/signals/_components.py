"""Stage 2 component attribution: the answer logit written by each attention and MLP block.

Each layer adds ``attn_out + mlp_out`` to the residual stream; the direct logit contribution of a
component is its output projected on an unembedding direction (``W_U[:, token]``, or
``W_U[:, yes] - W_U[:, no]`` for a margin). The final norm sits between the residual and W_U and is
not linear, so we linearise it the usual way (TransformerLens's ``apply_ln_to_stack``): its divisor
is frozen at the value it takes on the final residual of each row, and its gain is folded into the
direction. Then the contributions of all components (plus the embedding's) add up exactly to the
direction's logit.

Without `gamma` and `scale` the plain dot product is used. It is a mere rescaling of the
linearised contributions only when the norm acts as one scalar per row (the divisor `scale`, or a
gain equal in every dimension): every component of the row is then multiplied by the same factor,
so the ranking within the row and its MLP share are unchanged and only the logit scale is lost. A
gain that differs across dimensions (any trained RMSNorm or LayerNorm weight) re-weights each
dimension of the direction, so the plain dot product can rank components differently and give
another MLP share (a toy gain vector moved it from 0.492 to 0.523). Pass the model's `gamma` (and
`scale`) whenever the numbers are compared or reported; `center` matters the same way for
LayerNorm models.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from vrp.core import ShapeError, SignalError

from ._checks import check_ids, check_shape, layer_labels, upcast

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
      ShapeError: `target` is not 1-D, or `foil` does not have its shape (one foil per row).
      SignalError: an id outside the vocabulary.
    """
    if target.ndim != 1:
        raise ShapeError(
            f"target must be [batch], one token id per row, but it has shape "
            f"{tuple(target.shape)}. Flatten it."
        )
    check_ids(target, unembed.shape[1], "target")
    direction = unembed[:, target].T
    if foil is None:
        return direction
    check_shape(foil, target.shape, "foil", "[batch], one token id per row of target")
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
      ShapeError: `attn_out` is not ``[batch layer d_model]``, or `mlp_out`, `direction`,
        `gamma` or `scale` does not match it (nothing is broadcast), or `layers` has the wrong
        length.
      SignalError: `scale` is not positive everywhere.
    """
    _check_stacks(attn_out, mlp_out, direction, gamma, scale)
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


def _check_stacks(
    attn_out: Tensor,
    mlp_out: Tensor,
    direction: Tensor,
    gamma: Tensor | None,
    scale: Tensor | None,
) -> None:
    """Raises `ShapeError` unless every input matches `attn_out`'s ``[batch layer d_model]``."""
    if attn_out.ndim != 3:
        raise ShapeError(
            f"attn_out must be [batch layer d_model], but it has shape {tuple(attn_out.shape)}. "
            "Stack each layer's output at the answer position along axis 1."
        )
    batch, n_layer, d_model = attn_out.shape
    check_shape(
        mlp_out, attn_out.shape, "mlp_out", "[batch layer d_model] like attn_out: the same layers"
    )
    check_shape(direction, (batch, d_model), "direction", "[batch d_model], one row per sample")
    if gamma is not None:
        check_shape(gamma, (d_model,), "gamma", "[d_model], the final norm's gain")
    if scale is not None:
        check_shape(scale, (batch,), "scale", "[batch], the final norm's divisor per row")


def _project(out: Tensor, weights: Tensor, center: bool) -> Tensor:
    """Returns the [batch layer] projections of `out` on each row's `weights`."""
    out = upcast(out).to(weights.dtype)
    if center:
        out = out - out.mean(dim=-1, keepdim=True)
    return torch.einsum("bld,bd->bl", out, weights)
