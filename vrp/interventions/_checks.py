"""Checks shared by the nodes and the executor (private): node fields when a node is built, and
selectors against the sizes a site really has once the model has run."""

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor

from ..core import Component, GraphError, Indices, Site, SiteError


def field_error(node: Any, name: str, expected: str, got: object, fix: str) -> GraphError:
    """The `GraphError` for field `name` of `node`: what it must be, what it is, an example."""
    shown = show(got)
    return GraphError(
        f"{node.kind} node: field {name!r} must be {expected}; got {shown}. Pass e.g. {fix}."
    )


def show(value: object) -> str:
    """A short description of `value` for messages (a tensor by dtype and shape)."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{text[:80]}..." if len(text) > 80 else text


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(values: object) -> tuple[int, ...] | None:
    """`values` as a tuple of ints, or None if it is not a sequence of ints."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        return None
    items = tuple(values)
    return items if all(is_int(v) for v in items) else None


def check_tensor(node: Any, name: str, value: object, *, min_ndim: int, fix: str) -> None:
    """A floating tensor of at least `min_ndim` axes and finite values, or a `GraphError`."""
    axes = f" with at least {min_ndim} axis" if min_ndim else ""
    expected = f"a floating-point tensor of finite values{axes}"
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.ndim < min_ndim:
        raise field_error(node, name, expected, value, fix)
    if not bool(torch.isfinite(value).all()):
        raise field_error(node, name, expected + " (it holds NaN or inf)", value, fix)


def check_number(node: Any, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise field_error(node, name, "a finite number", value, f"{name}=2.0")


def tower_positions(site: Site, n_tokens: int) -> list[int]:
    """A vision / projector site's `Indices`, checked against the tower's token count, which is
    only known once the tower has run (it depends on the image size and the family)."""
    indices = list(cast(Indices, site.positions).indices)
    bad = [i for i in indices if not -n_tokens <= i < n_tokens]
    if bad:
        raise SiteError(
            f"positions {bad} are outside the {site.tower.value} tower's {n_tokens} tokens "
            f"per image here (valid: {-n_tokens}..{n_tokens - 1}). Pass indices in that range."
        )
    if len({i % n_tokens for i in indices}) != len(indices):
        raise SiteError(
            f"positions {indices} name one token twice among {n_tokens} tokens (e.g. 0 "
            f"and {-n_tokens}). List each token once."
        )
    return indices


def check_units(site: Site, value: Tensor) -> None:
    """Head / neuron / dim selectors against the width the site really has at run time (the
    projector's input is the vision tower's width, which `Site` validation cannot know)."""
    for name, units, axis in (
        ("heads", site.heads, 1 if site.component is Component.ATTN_PATTERN else 2),
        ("neurons", site.neurons, value.ndim - 1),
        ("dims", site.dims, value.ndim - 1),
    ):
        size = value.shape[axis]
        bad = [u for u in units or () if not 0 <= u < size]
        if bad:
            raise SiteError(
                f"{name} {bad} are out of range: the value read there has {size} {name} "
                f"(0..{size - 1}). Pass {name} in that range."
            )
