"""Typed activation sites: where in a VLM a value is read or written.

A `Site` replaces hook-name strings such as ``"blocks.6.attn.hook_z"``. It is a frozen value built from
enums, so a typo fails at construction and sites can be sorted into the model's forward order, hashed,
compared and serialised. What a site means is the same in every family; only the model adapters know the
Hugging Face module it maps to.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, no_type_check

from ._errors import SiteError
from ._positions import AllTokens, Positions, positions_from_dict


class Tower(Enum):
    """The part of the VLM a site lives in, in forward order."""

    VISION = "vision"
    PROJECTOR = "projector"
    LANGUAGE = "language"


class Component(Enum):
    """What a site reads inside one layer, in the order a forward pass produces them.

    Canonical shapes (axis names from `vrp.core.types`):

    - ``RESID_PRE``: the layer's input residual stream, ``batch seq d_model``.
    - ``ATTN_IN``: the residual stream as the attention block reads it (its norm's input),
      ``batch seq d_model``: equal to ``RESID_PRE``, but writing it changes only what the
      attention block sees, not the stream the rest of the model reads (an edge's receiver).
    - ``ATTN_PATTERN``: attention weights, ``batch head seq key`` (read-only; recomputed from the
      attention block's queries, keys and mask, so any attention implementation serves it).
    - ``HEAD_OUT``: per-head attention outputs before the output projection, ``batch seq head d_head``.
    - ``ATTN_OUT``: the attention block's output added to the residual stream, ``batch seq d_model``.
    - ``MLP_IN``: the residual stream as the MLP block reads it (its norm's input), ``batch seq
      d_model``: ``RESID_PRE + ATTN_OUT``; writing it changes only the MLP's input.
    - ``MLP_NEURONS``: the MLP's hidden units feeding its down projection, ``batch seq d_mlp``.
    - ``MLP_OUT``: the MLP block's output added to the residual stream, ``batch seq d_model``.
    - ``RESID_POST``: the layer's output residual stream, ``batch seq d_model``.

    The projector tower has one layer (0) with ``RESID_PRE`` (vision features entering it) and
    ``RESID_POST`` (the image tokens it hands to the language model, ``batch patch d_model``).
    """

    RESID_PRE = "resid_pre"
    ATTN_IN = "attn_in"
    ATTN_PATTERN = "attn_pattern"
    HEAD_OUT = "head_out"
    ATTN_OUT = "attn_out"
    MLP_IN = "mlp_in"
    MLP_NEURONS = "mlp_neurons"
    MLP_OUT = "mlp_out"
    RESID_POST = "resid_post"


_TOWER_ORDER = {tower: i for i, tower in enumerate(Tower)}
_COMPONENT_ORDER = {component: i for i, component in enumerate(Component)}
HEAD_COMPONENTS = frozenset({Component.HEAD_OUT, Component.ATTN_PATTERN})
"""Components with a head axis, on which a head selector is allowed."""
STREAM_COMPONENTS = frozenset(
    {
        Component.RESID_PRE,
        Component.ATTN_IN,
        Component.ATTN_OUT,
        Component.MLP_IN,
        Component.MLP_OUT,
        Component.RESID_POST,
    }
)
"""Components laid out ``batch seq d_model``, on which a hidden-dimension selector is allowed."""


def _as_indices(name: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    items = tuple(value)
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise SiteError(
            f"Site {name} must be a non-empty sequence of ints or None, got {value!r}. "
            f"Pass e.g. {name}=(0, 3)."
        )
    if len(set(items)) != len(items):
        raise SiteError(f"Site {name} contains duplicates: {items!r}. List each index once.")
    return items


@no_type_check  # validates its own fields with clearer messages than a runtime type checker
@dataclass(frozen=True, kw_only=True)
class Site:
    """A place in a VLM: tower, layer, component, and optional head / neuron / position selectors.

    Attributes:
      layer: layer index inside the tower (0-based; the projector has only layer 0).
      component: what is read inside the layer (see `Component` for canonical shapes).
      tower: which tower; defaults to the language model.
      heads: head indices for ``HEAD_OUT`` / ``ATTN_PATTERN``; None means all heads.
      neurons: unit indices for ``MLP_NEURONS``; None means all units.
      dims: hidden dimensions (``d_model`` indices) of a residual-stream, attention-output or
        MLP-output site; None means all.
      positions: token positions (a `Positions` selector); all tokens by default.

    Raises:
      SiteError: a selector does not apply to the component, or indices are malformed. Ranges are
        checked against a model by its adapter (`validate`), since they depend on the model.
    """

    layer: int
    component: Component
    tower: Tower = Tower.LANGUAGE
    heads: tuple[int, ...] | None = (
        None  # any int sequence (or one int) is accepted and stored as a tuple
    )
    neurons: tuple[int, ...] | None = None
    dims: tuple[int, ...] | None = None
    positions: Positions = field(default_factory=AllTokens)

    def __post_init__(self) -> None:
        if not isinstance(self.component, Component):
            raise SiteError(
                f"Site component must be a Component, got {self.component!r}. "
                f"Use one of: {', '.join('Component.' + c.name for c in Component)}."
            )
        if not isinstance(self.tower, Tower):
            raise SiteError(f"Site tower must be a Tower, got {self.tower!r}.")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool):
            raise SiteError(f"Site layer must be an int, got {self.layer!r}.")
        object.__setattr__(self, "heads", _as_indices("heads", self.heads))
        object.__setattr__(self, "neurons", _as_indices("neurons", self.neurons))
        object.__setattr__(self, "dims", _as_indices("dims", self.dims))
        if self.dims is not None and self.component not in STREAM_COMPONENTS:
            raise SiteError(
                f"A dims selector needs a d_model-wide component (RESID_PRE, RESID_POST, ATTN_OUT, "
                f"MLP_OUT), got {self.component.name}. Use neurons= for MLP_NEURONS."
            )
        if self.heads is not None and self.component not in HEAD_COMPONENTS:
            raise SiteError(
                f"A head selector needs a component with a head axis (HEAD_OUT or ATTN_PATTERN), "
                f"got {self.component.name}. Drop heads= or use Component.HEAD_OUT."
            )
        if self.neurons is not None and self.component is not Component.MLP_NEURONS:
            raise SiteError(
                f"A neuron selector needs Component.MLP_NEURONS, got {self.component.name}. "
                "Drop neurons= or use Component.MLP_NEURONS."
            )

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key giving the forward order in which a model produces its sites."""
        return (_TOWER_ORDER[self.tower], self.layer, _COMPONENT_ORDER[self.component])

    @property
    def whole(self) -> "Site":
        """This site without head, neuron, dimension or position selectors: the whole value at
        its tower, layer and component, which every selection of it narrows."""
        return Site(tower=self.tower, layer=self.layer, component=self.component)

    def replace(self, **changes: Any) -> "Site":
        """Returns a copy with `changes` applied (validated like a new site)."""
        fields = {**self.to_kwargs(), **changes}
        return Site(**fields)

    def to_kwargs(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "component": self.component,
            "tower": self.tower,
            "heads": self.heads,
            "neurons": self.neurons,
            "dims": self.dims,
            "positions": self.positions,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `Site.from_dict` inverts it."""
        return {
            "tower": self.tower.value,
            "layer": self.layer,
            "component": self.component.value,
            "heads": list(self.heads) if self.heads is not None else None,
            "neurons": list(self.neurons) if self.neurons is not None else None,
            "dims": list(self.dims) if self.dims is not None else None,
            "positions": self.positions.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Site":
        """Builds a site from `to_dict` output.

        Raises:
          SiteError: a field is missing or holds an unknown tower / component name.
        """
        try:
            return cls(
                tower=Tower(data["tower"]),
                layer=data["layer"],
                component=Component(data["component"]),
                heads=data.get("heads"),
                neurons=data.get("neurons"),
                dims=data.get("dims"),
                positions=positions_from_dict(data.get("positions", {"kind": "all"})),
            )
        except (KeyError, ValueError) as err:
            if isinstance(err, SiteError):
                raise
            raise SiteError(
                f"Cannot read a site from {data!r}: {err}. Expected keys tower, layer, component "
                f"with towers {[t.value for t in Tower]} and components {[c.value for c in Component]}."
            ) from err

    def __str__(self) -> str:
        parts = [f"{self.tower.value}.L{self.layer}.{self.component.value}"]
        if self.heads is not None:
            parts.append(f"heads={list(self.heads)}")
        if self.neurons is not None:
            parts.append(f"neurons={list(self.neurons)}")
        if self.dims is not None:
            parts.append(f"dims={len(self.dims)}")
        if not isinstance(self.positions, AllTokens):
            parts.append(f"positions={self.positions}")
        return "[" + " ".join(parts) + "]"


def sort_sites(sites: "list[Site] | tuple[Site, ...]") -> list[Site]:
    """Returns `sites` in the forward order of a model (stable for equal keys)."""
    return sorted(sites, key=lambda s: s.order)
