"""Validation helpers shared by the signal modules (private)."""

from collections.abc import Sequence

import torch
from torch import Tensor

from vrp.core import ConfigError, ShapeError, SignalError


def float_dtype(dtype: torch.dtype) -> torch.dtype:
    """Returns `dtype` raised to float32 at least: half precision loses the small differences."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def upcast(x: Tensor) -> Tensor:
    """Returns `x` as float32 at least (see `float_dtype`)."""
    return x.to(float_dtype(x.dtype))


def check_shape(x: Tensor, expected: Sequence[int], name: str, meaning: str) -> None:
    """Raises `ShapeError` unless `x` has exactly the shape `expected`: nothing is broadcast.

    Two inputs that describe the same rows (a target per row of logits, a direction per row of
    outputs) must agree exactly. torch would silently broadcast a size-1 axis (one target for
    every row), which hides a pairing bug behind plausible numbers.
    """
    want = tuple(int(n) for n in expected)
    if tuple(x.shape) != want:
        raise ShapeError(
            f"{name} must have shape {want} ({meaning}), but it has shape {tuple(x.shape)}. "
            "Inputs are never broadcast against each other: pass one entry per row (to share "
            "one on purpose, expand it first, e.g. x.expand(batch, ...))."
        )


def check_distribution(flat: Tensor, name: str) -> None:
    """Raises `SignalError` unless every row of `flat` is finite, non-negative, with mass > 0."""
    if not bool(torch.isfinite(flat).all()):
        raise SignalError(
            f"{name} must be finite, but it holds NaN or inf values. Check the attention patterns "
            "the maps were built from (eager attention, no overflow in half precision)."
        )
    if bool((flat < 0).any()):
        raise SignalError(
            f"{name} must be non-negative (attention weights), but its minimum is "
            f"{float(flat.min()):.3g}. Pass attention maps, not differences of maps."
        )
    if bool((flat.sum(-1) <= 0).any()):
        raise SignalError(
            f"every map in {name} needs positive total mass, but some map sums to 0. The "
            "image-token mask probably selects keys the answer position cannot attend to."
        )


def check_ids(ids: Tensor, vocab: int, name: str) -> None:
    """Raises `SignalError` unless every token id in `ids` lies in ``0 .. vocab - 1``."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise SignalError(
            f"{name} must hold token ids in 0..{vocab - 1} (the vocab axis of the logits), but "
            f"its ids span {int(ids.min())}..{int(ids.max())}. Pass ids from the model's tokenizer."
        )


def check_id_set(ids: Sequence[int], vocab: int, name: str) -> tuple[int, ...]:
    """Returns `ids` as a tuple after checking it is non-empty and inside the vocabulary."""
    if len(ids) == 0:
        raise ConfigError(f"{name} must name at least one token id, but it is empty.")
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ConfigError(
            f"{name} must hold token ids in 0..{vocab - 1}, but got {bad}. "
            "Pass ids from the model's tokenizer."
        )
    return tuple(ids)


def layer_labels(n: int, layers: Sequence[int] | None) -> tuple[int, ...]:
    """Returns the layer index of each position along a layer axis of length `n`."""
    if layers is None:
        return tuple(range(n))
    if len(layers) != n:
        raise ShapeError(
            f"layers must name one layer per position of the layer axis ({n}), but it has "
            f"{len(layers)} entries. Pass the layer indices the values were gathered at."
        )
    return tuple(int(i) for i in layers)


def largest_step(values: Tensor, sign: int) -> tuple[Tensor, Tensor]:
    """Returns (position, size) of the largest `sign`-ward step ``values[l] - values[l-1]``.

    The position is that of `l`, the layer the step arrives at (so never 0); ties go to the
    earliest layer. `sign` is +1 for the largest increase, -1 for the largest drop.
    """
    steps = sign * torch.diff(values, dim=-1)
    pos = steps.argmax(dim=-1)  # argmax returns the first maximal index on ties
    size = steps.gather(-1, pos.unsqueeze(-1)).squeeze(-1)
    return pos + 1, size
