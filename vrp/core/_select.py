"""Apply a site's head, neuron and position selectors to a canonical tensor, and write back.

`select` narrows a full canonical value (as an adapter reads it) to what the site names; `merge` puts a
narrowed value back into the full tensor. Both are plain tensor functions, so interventions can be
checked without a model.
"""

import torch
from torch import Tensor

from ._errors import ShapeError
from ._positions import Mask
from ._site import Component, Site


def _seq_axis(site: Site) -> int:
    return 2 if site.component is Component.ATTN_PATTERN else 1


def _head_axis(site: Site) -> int:
    return 1 if site.component is Component.ATTN_PATTERN else 2


def _unit_index(site: Site, value: Tensor) -> tuple[int, Tensor] | None:
    """Returns (axis, indices) of the site's head, neuron or hidden-dimension selector, if any."""
    if site.heads is not None:
        return _head_axis(site), torch.tensor(site.heads, device=value.device)
    units = site.neurons if site.neurons is not None else site.dims
    if units is not None:
        return value.ndim - 1, torch.tensor(units, device=value.device)
    return None


def _uniform_count(mask: Mask) -> int:
    counts = mask.sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise ShapeError(
            f"The selected positions differ in number between rows ({counts.tolist()}), so they "
            "cannot be stacked into a batch seq tensor. Select positions that every row has "
            "(image tokens, last token, explicit indices) or read all positions and mask them."
        )
    return int(counts[0])


def select(site: Site, value: Tensor, mask: Mask) -> Tensor:
    """Narrows a canonical `value` to the site's units and positions.

    Args:
      site: the site whose selectors apply.
      value: the full canonical tensor of `site.component` (batch first).
      mask: the site's positions resolved on this batch (``batch seq``).

    Returns:
      The value with the head / neuron axis narrowed and the position axis replaced by the
      selected positions, in order.

    Raises:
      ShapeError: rows select different numbers of positions.
    """
    unit = _unit_index(site, value)
    if unit is not None:
        value = value.index_select(unit[0], unit[1])
    if bool(mask.all()):
        return value
    axis = _seq_axis(site)
    count = _uniform_count(mask)
    moved = value.movedim(axis, 1)
    picked = moved[mask].reshape(moved.shape[0], count, *moved.shape[2:])
    return picked.movedim(1, axis)


def selection_shape(site: Site, value: Tensor, mask: Mask) -> tuple[int, ...]:
    """The shape `select(site, value, mask)` returns, without selecting.

    Raises:
      ShapeError: rows select different numbers of positions.
    """
    shape = list(value.shape)
    unit = _unit_index(site, value)
    if unit is not None:
        shape[unit[0]] = len(unit[1])
    if not bool(mask.all()):
        shape[_seq_axis(site)] = _uniform_count(mask)
    return tuple(shape)


def merge(site: Site, full: Tensor, part: Tensor, mask: Mask) -> Tensor:
    """Returns `full` with the entries `select(site, full, mask)` would pick replaced by `part`.

    Raises:
      ShapeError: `part` does not have the shape of the selection.
    """
    out = full.clone()
    merge_into(site, out, part, mask)
    return out


def merge_into(site: Site, full: Tensor, part: Tensor, mask: Mask) -> None:
    """Writes `part` into the entries of `full` (in place) that `select(site, full, mask)` picks.

    Raises:
      ShapeError: `part` does not have the shape of the selection.
    """
    expected = selection_shape(site, full, mask)
    if tuple(part.shape) != expected:
        raise ShapeError(
            f"A value written to {site} must have the selection's shape {expected}, "
            f"got {tuple(part.shape)}."
        )
    part = part.to(dtype=full.dtype, device=full.device)
    unit = _unit_index(site, full)
    whole = bool(mask.all())
    if whole and unit is None:
        full.copy_(part)
        return
    axis = _seq_axis(site)
    out = full.movedim(axis, 1)  # a view: writes land in `full`
    moved_part = part.movedim(axis, 1)
    if unit is None:
        out[mask] = moved_part.reshape(-1, *moved_part.shape[2:])
        return
    axis_after_move, index = _moved(unit[0], axis), unit[1]
    if whole:
        out.index_copy_(axis_after_move, index, moved_part)
        return
    slab = out.index_select(axis_after_move, index)  # the selected units, all positions
    slab[mask] = moved_part.reshape(-1, *moved_part.shape[2:])
    out.index_copy_(axis_after_move, index, slab)


def _moved(unit_axis: int, seq_axis: int) -> int:
    """Index of `unit_axis` after moving `seq_axis` to position 1."""
    if unit_axis == seq_axis:
        raise ShapeError("unit and position axes coincide")
    if unit_axis < 1 or unit_axis > seq_axis:
        return unit_axis
    return unit_axis + 1 if unit_axis < seq_axis else unit_axis
