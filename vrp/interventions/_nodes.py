"""Intervention nodes: typed, frozen, serialisable descriptions of what to do at a site.

A node never touches a model. `apply` maps the selected part of a site's value (its run's rows, the
site's heads / neurons / positions) to its replacement; the executor reads and writes the model.
"""

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import (
    Component,
    GraphError,
    ImageTokens,
    LastToken,
    Positions,
    ShapeError,
    Site,
    Tower,
    positions_from_dict,
)
from ._tensors import tensor_from_json, tensor_to_json


class Context:
    """What a node may see while the graph runs: sibling runs' values and the capture store."""

    def source_part(self, run: str, site: Site) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def store(self, name: str, value: Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def row_ids(self, run: str) -> Tensor:  # pragma: no cover - interface
        """Indices of this chunk's rows of `run` in the whole batch (chunking-independent draws)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Node:
    """Base of all nodes. `run` names the input batch (run) the node acts on."""

    kind: ClassVar[str] = ""
    run: str = "main"

    @property
    def sites(self) -> tuple[Site, ...]:
        """The sites this node reads or writes."""
        return ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            out[f.name] = _encode(getattr(self, f.name))
        return out


@dataclass(frozen=True, kw_only=True)
class SiteNode(Node):
    """A node acting on one site."""

    site: Site
    writes: ClassVar[bool] = True

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.site,)

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        """Returns the replacement of `part` (the selection of this node's site on its run)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.site}"


@dataclass(frozen=True, kw_only=True)
class Capture(SiteNode):
    """Saves the site's selected value under `name` (after earlier nodes at the same site)."""

    kind: ClassVar[str] = "capture"
    writes: ClassVar[bool] = False
    name: str

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        ctx.store(self.name, part)
        return part

    def describe(self) -> str:
        return f"capture {self.site} as {self.name!r}"


@dataclass(frozen=True, kw_only=True)
class Zero(SiteNode):
    """Zero ablation."""

    kind: ClassVar[str] = "zero"

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        return torch.zeros_like(part)


def _check_row_shape(node: SiteNode, stored: Tensor, part: Tensor, what: str) -> None:
    if tuple(stored.shape) != tuple(part.shape[1:]):
        raise ShapeError(
            f"{node.kind} at {node.site}: the stored {what} has shape {tuple(stored.shape)}, but "
            f"one row of the selection has shape {tuple(part.shape[1:])}. Compute it on the "
            "same site and positions (see vrp.interventions.reference_values)."
        )


@dataclass(frozen=True, kw_only=True)
class MeanAblate(SiteNode):
    """Replaces the selection with a mean computed on a reference dataset (stored in the graph)."""

    kind: ClassVar[str] = "mean"
    mean: Float[Tensor, "..."]

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        _check_row_shape(self, self.mean, part, "mean")
        return self.mean.to(part).expand_as(part).clone()


@dataclass(frozen=True, kw_only=True)
class ResampleAblate(SiteNode):
    """Replaces each row's selection with a draw from a reference pool (seeded, stored)."""

    kind: ClassVar[str] = "resample"
    pool: Float[Tensor, "pool ..."]
    seed: int = 0

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        _check_row_shape(self, self.pool[0], part, "pool entry")
        rows = ctx.row_ids(self.run)
        generator = torch.Generator().manual_seed(self.seed)
        draw = torch.randint(len(self.pool), (int(rows.max()) + 1,), generator=generator)[rows]
        return self.pool[draw].to(part)


@dataclass(frozen=True, kw_only=True)
class Patch(SiteNode):
    """Copies the value of run `source` at the site into this node's run (clean into corrupted).

    `source_positions` selects the source's positions when they differ from the target's (same
    count); by default both runs use `site.positions`. A one-row source patches every target row.
    """

    kind: ClassVar[str] = "patch"
    source: str
    source_positions: Positions | None = None

    @property
    def source_site(self) -> Site:
        if self.source_positions is None:
            return self.site
        return self.site.replace(positions=self.source_positions)

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        donor = ctx.source_part(self.source, self.source_site)
        if donor.shape[0] == 1 and part.shape[0] > 1:
            donor = donor.expand_as(part)
        if donor.shape != part.shape:
            raise ShapeError(
                f"patch {self.source!r} -> {self.run!r} at {self.site}: the source selection has "
                f"shape {tuple(donor.shape)}, the target's {tuple(part.shape)}. Use positions "
                "that select as many tokens in both runs (e.g. LastToken, ImageTokens)."
            )
        return donor.clone()

    def describe(self) -> str:
        return f"patch {self.site} from run {self.source!r}"


@dataclass(frozen=True, kw_only=True)
class Add(SiteNode):
    """Adds `coefficient * direction` (steering); the direction broadcasts over the trailing axes."""

    kind: ClassVar[str] = "add"
    direction: Float[Tensor, "*dims"]
    coefficient: float = 1.0

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        trailing = tuple(part.shape[-self.direction.ndim :])
        if tuple(self.direction.shape) != trailing:
            raise ShapeError(
                f"add at {self.site}: direction shape {tuple(self.direction.shape)} does not match "
                f"the selection's trailing axes {trailing}."
            )
        return part + self.coefficient * self.direction.to(part)


@dataclass(frozen=True, kw_only=True)
class Scale(SiteNode):
    """Multiplies the selection by `factor`."""

    kind: ClassVar[str] = "scale"
    factor: float

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        return part * self.factor


@dataclass(frozen=True, kw_only=True)
class AttentionKnockout(Node):
    """Blocks attention from `queries` to `keys` at one language layer (all heads, or `heads`).

    Implemented on the attention mask the layer's attention block receives, so softmax
    renormalises over the remaining keys, as in attention-knockout studies.
    """

    kind: ClassVar[str] = "knockout"
    layer: int
    heads: tuple[int, ...] | None = None
    queries: Positions = field(default_factory=LastToken)
    keys: Positions = field(default_factory=ImageTokens)

    @property
    def sites(self) -> tuple[Site, ...]:
        return (Site(layer=self.layer, component=Component.ATTN_PATTERN, heads=self.heads),)

    def describe(self) -> str:
        heads = "all heads" if self.heads is None else f"heads {list(self.heads)}"
        return f"knockout L{self.layer} {heads}: {self.queries} -/-> {self.keys}"


@dataclass(frozen=True, kw_only=True)
class ImagePatchMask(Node):
    """Replaces chosen image tokens (patch-grid indices, row-major) at the projector's output.

    `fill` is "zero" or "mean" (the mean over each image's own tokens).
    """

    kind: ClassVar[str] = "patch_mask"
    patches: tuple[int, ...]
    fill: Literal["zero", "mean"] = "mean"

    @property
    def sites(self) -> tuple[Site, ...]:
        return (Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST),)

    def apply_tokens(self, tokens: Float[Tensor, "batch patch d_model"]) -> Tensor:
        if max(self.patches) >= tokens.shape[1] or min(self.patches) < 0:
            raise ShapeError(
                f"patch_mask: patch indices must lie in 0..{tokens.shape[1] - 1} (the image's "
                f"tokens), got {sorted(self.patches)[0]}..{sorted(self.patches)[-1]}."
            )
        out = tokens.clone()
        index = list(self.patches)
        fill = (
            tokens.mean(dim=1, keepdim=True)
            if self.fill == "mean"
            else torch.zeros_like(tokens[:, :1])
        )
        out[:, index] = fill.expand(-1, len(index), -1)
        return out

    def describe(self) -> str:
        return f"patch_mask {len(self.patches)} image tokens with {self.fill}"


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (Capture, Zero, MeanAblate, ResampleAblate, Patch, Add, Scale, AttentionKnockout,
                ImagePatchMask)
}  # fmt: skip


def _encode(value: Any) -> Any:
    if isinstance(value, Site):
        return {"site": value.to_dict()}
    if isinstance(value, Positions):
        return {"positions": value.to_dict()}
    if isinstance(value, Tensor):
        return {"tensor": tensor_to_json(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        decoders = {
            "site": Site.from_dict,
            "positions": positions_from_dict,
            "tensor": tensor_from_json,
        }
        if key in decoders:
            return decoders[key](inner)
    if isinstance(value, list):
        return tuple(value)
    return value


def node_from_dict(data: dict[str, Any]) -> Node:
    """Inverts `Node.to_dict`.

    Raises:
      GraphError: unknown node kind or fields.
    """
    kind = data.get("kind")
    if kind not in NODE_TYPES:
        raise GraphError(f"Unknown node kind {kind!r}; known kinds: {', '.join(NODE_TYPES)}.")
    cls = NODE_TYPES[str(kind)]
    try:
        return cls(**{k: _decode(v) for k, v in data.items() if k != "kind"})
    except TypeError as err:
        raise GraphError(f"Cannot build a {kind!r} node from {sorted(data)}: {err}.") from err
