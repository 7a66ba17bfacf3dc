"""Stage 2 logit lens: read each layer's residual stream at the answer position as final logits.

Each layer's residual goes through the final norm and the unembedding, as if the model stopped
there, and the truth margin (and optionally the yes-vs-no margin) is scored on the result. Layers
are decoded one at a time, so ``[batch layer vocab]`` logits never exist at once (Qwen2-VL's
vocabulary has 152k entries).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from vrp.core import ConfigError, ShapeError

from ._checks import check_shape, largest_step, layer_labels, upcast
from ._generation import truth_margin, yes_no_margin
from ._types import LayerValues

Unembed = Float[Tensor, "d_model vocab"] | Callable[[Tensor], Tensor]
"""W_U as a ``[d_model vocab]`` matrix (HF's ``lm_head.weight.T``), or a callable such as the
``lm_head`` module itself (which also applies a bias or soft-capping, if the model has one)."""


@dataclass(frozen=True, kw_only=True)
class LogitLens:
    """Per-layer margins of the logit lens at the answer position."""

    margin: Float[Tensor, "batch layer"]  # logit(correct) - max logit(other tokens)
    yes_no: Float[Tensor, "batch layer"] | None  # see `yes_no_margin`; None without yes/no ids
    peak_layer: Int[Tensor, " batch"]  # layer of the largest margin increase (see its docstring)
    peak_increase: Float[Tensor, " batch"]  # margin(peak) - margin(peak - 1)
    layers: tuple[int, ...]  # the layer index of each position along the layer axis


def logit_lens(
    resid: Float[Tensor, "batch layer d_model"],
    unembed: Unembed,
    *,
    target: Int[Tensor, " batch"],
    norm: Callable[[Tensor], Tensor] | None = None,
    yes_ids: Sequence[int] | None = None,
    no_ids: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
) -> LogitLens:
    """Decodes each layer's residual at the answer position and scores the truth margin.

    Args:
      resid: the residual stream after each layer, at the answer position.
      unembed: W_U ``[d_model vocab]`` or a callable mapping ``[batch d_model]`` to logits.
      target: the correct answer's token id for each row.
      norm: the model's final norm (a module or any callable on ``[batch d_model]``); None
        skips it, which is only right for models without one.
      yes_ids: token ids spelling "yes", to also score the yes-vs-no margin (with `no_ids`).
      no_ids: token ids spelling "no".
      layers: the layer index of each position along the layer axis; None means 0, 1, 2, ...

    Returns:
      The truth margin per layer, the yes-vs-no margin if ids were given, and the peak layer.

    Raises:
      ConfigError: only one of `yes_ids`, `no_ids` given, or bad ids (see `yes_no_margin`).
      ShapeError: `resid` is not ``[batch layer d_model]``, `target` is not one id per row,
        a W_U matrix is not ``[d_model vocab]`` for this `resid`, the unembedding callable does
        not return ``[batch vocab]``, or there are fewer than 2 layers.
      SignalError: a target id outside the vocabulary.
    """
    if (yes_ids is None) != (no_ids is None):
        raise ConfigError("pass both yes_ids and no_ids to score the yes-vs-no margin, or neither.")
    _check_inputs(resid, unembed, target)
    labels = layer_labels(resid.shape[1], layers)
    _check_layers(resid.shape[1])
    if isinstance(unembed, Tensor):
        unembed = upcast(unembed)  # once, not per layer: W_U is the largest tensor here
    margins, yes_no = [], []
    with torch.no_grad():
        for layer in range(resid.shape[1]):
            logits = _decode(resid[:, layer], unembed, norm)
            margins.append(truth_margin(logits, target))
            if yes_ids is not None and no_ids is not None:
                yes_no.append(yes_no_margin(logits, yes_ids, no_ids))
    margin = torch.stack(margins, dim=1)
    position, increase = largest_step(margin, sign=1)
    return LogitLens(
        margin=margin,
        yes_no=torch.stack(yes_no, dim=1) if yes_no else None,
        peak_layer=torch.tensor(labels, device=margin.device)[position],
        peak_increase=increase,
        layers=labels,
    )


def peak_integration_layer(
    margins: LayerValues, *, layers: Sequence[int] | None = None
) -> Int[Tensor, "*batch"]:
    """The layer `l` where a margin grows most: argmax over l >= 1 of margin(l) - margin(l - 1).

    Applied to the truth margin this is where the answer forms; applied to the visual-attribution
    margin (`visual_attribution`) it is where the image starts to matter, the study's "peak
    visual-integration layer". The first layer cannot be the peak (it has no predecessor), and
    ties go to the earliest layer.

    Args:
      margins: a margin per layer.
      layers: the layer index of each position along the layer axis; None means 0, 1, 2, ...

    Returns:
      The layer index of the largest increase, one per sample.

    Raises:
      ShapeError: fewer than 2 layers, or `layers` of the wrong length.
    """
    labels = layer_labels(margins.shape[-1], layers)
    _check_layers(margins.shape[-1])
    position, _ = largest_step(margins, sign=1)
    return torch.tensor(labels, device=margins.device)[position]


def visual_attribution(
    margin_image: Float[Tensor, "*shape"], margin_blank: Float[Tensor, "*shape"]
) -> Float[Tensor, "*shape"]:
    """Visual-attribution margin: the margin with the real image minus that with a blank one.

    Args:
      margin_image: margins (e.g. `LogitLens.margin`) with the real image.
      margin_blank: the same margins with a blank grey image in its place, same prompt.

    Returns:
      The difference; positive where the image supports the correct answer.

    Raises:
      ShapeError: the two margins differ in shape (no broadcasting: a mismatch is a pairing bug).
    """
    if margin_image.shape != margin_blank.shape:
        raise ShapeError(
            f"margin_image and margin_blank must have the same shape, but got "
            f"{tuple(margin_image.shape)} and {tuple(margin_blank.shape)}. Run the blank image "
            "through the same prompts and layers."
        )
    return margin_image - margin_blank


def _decode(h: Tensor, unembed: Unembed, norm: Callable[[Tensor], Tensor] | None) -> Tensor:
    """Returns the [batch vocab] logits of one layer's residual."""
    if norm is not None:
        h = norm(h)
    if isinstance(unembed, Tensor):
        return h.to(unembed.dtype) @ unembed  # W_U's dtype, float32 at least
    logits = unembed(h)
    if logits.ndim != 2 or logits.shape[0] != h.shape[0]:
        raise ShapeError(
            f"the unembedding callable must map [batch d_model] to [batch vocab], but it "
            f"returned {tuple(logits.shape)} for {tuple(h.shape)}."
        )
    return logits


def _check_inputs(resid: Tensor, unembed: Unembed, target: Tensor) -> None:
    """Raises `ShapeError` unless `resid`, a W_U matrix and `target` agree on batch and d_model."""
    if resid.ndim != 3:
        raise ShapeError(
            f"resid must be [batch layer d_model], but it has shape {tuple(resid.shape)}. Stack "
            "each layer's residual at the answer position along axis 1."
        )
    check_shape(target, resid.shape[:1], "target", "[batch], one token id per row of resid")
    if isinstance(unembed, Tensor) and (unembed.ndim != 2 or unembed.shape[0] != resid.shape[2]):
        raise ShapeError(
            f"unembed must be W_U of shape [d_model vocab] with d_model = {resid.shape[2]} like "
            f"resid, but it has shape {tuple(unembed.shape)}. Pass lm_head.weight.T, not "
            "lm_head.weight."
        )


def _check_layers(n_layer: int) -> None:
    """Raises `ShapeError` unless there are at least 2 layers (a step needs a predecessor)."""
    if n_layer < 2:
        raise ShapeError(f"a peak layer needs at least 2 layers, but got {n_layer}.")
