"""Intervention nodes: typed, frozen, serialisable descriptions of what to do at a site.

A node never touches a model. `apply` maps the selected part of a site's value (its run's rows, the
site's heads / neurons / positions) to its replacement; the executor reads and writes the model.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import (
    AllTokens,
    Component,
    GraphError,
    ImageTokens,
    LastToken,
    Positions,
    ShapeError,
    Site,
    Tower,
)
from ._checks import check_number, check_tensor, field_error, int_tuple, is_int
from ._tensors import tensor_to_json


class Context:
    """What a node may see while the graph runs: sibling runs' values and the capture store."""

    def source_part(self, run: str, site: Site) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def store(self, name: str, value: Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def row_ids(self, run: str) -> Tensor:  # pragma: no cover - interface
        """Indices of this chunk's rows of `run` in the whole batch (chunking-independent draws)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True, eq=False)
class Node:
    """Base of all nodes. `run` names the input batch (run) the node acts on.

    Nodes compare equal when their types and fields are equal, tensors by value (`torch.equal`,
    same dtype), so a graph equals its JSON round trip.
    """

    kind: ClassVar[str] = ""
    run: str = "main"

    def __post_init__(self) -> None:
        self._check_fields()

    def _check_fields(self) -> None:
        """Raises `GraphError` naming the first field of the wrong type or value."""
        if not isinstance(self.run, str) or not self.run:
            raise field_error(self, "run", "a non-empty run name", self.run, "run='main'")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = object.__hash__

    @property
    def sites(self) -> tuple[Site, ...]:
        """The sites this node reads or writes."""
        return ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            out[f.name] = _encode(getattr(self, f.name))
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class SiteNode(Node):
    """A node acting on one site."""

    site: Site
    writes: ClassVar[bool] = True

    def _check_fields(self) -> None:
        super()._check_fields()
        if not isinstance(self.site, Site):
            raise field_error(
                self, "site", "a vrp.Site", self.site, "site=vrp.Site(layer=0, component=...)"
            )

    @property
    def sites(self) -> tuple[Site, ...]:
        return (self.site,)

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        """Returns the replacement of `part` (the selection of this node's site on its run)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind} {self.site}"


@dataclass(frozen=True, kw_only=True, eq=False)
class Capture(SiteNode):
    """Saves the site's selected value under `name` (after earlier nodes at the same site)."""

    kind: ClassVar[str] = "capture"
    writes: ClassVar[bool] = False
    name: str

    def _check_fields(self) -> None:
        super()._check_fields()
        if not isinstance(self.name, str) or not self.name:
            raise field_error(self, "name", "a non-empty string", self.name, "name='resid'")

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        ctx.store(self.name, part)
        return part

    def describe(self) -> str:
        return f"capture {self.site} as {self.name!r}"


@dataclass(frozen=True, kw_only=True, eq=False)
class Zero(SiteNode):
    """Zero ablation."""

    kind: ClassVar[str] = "zero"

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        return torch.zeros_like(part)


def _check_row_shape(
    node: SiteNode, stored: Tensor, part: Tensor, what: str, *, broadcast: bool = False
) -> None:
    row = tuple(part.shape[1:])
    fits = tuple(stored.shape) == row
    if broadcast and not fits:
        try:
            fits = torch.broadcast_shapes(tuple(stored.shape), row) == row
        except RuntimeError:
            fits = False
    if not fits:
        allowed = " (or broadcast to it)" if broadcast else ""
        raise ShapeError(
            f"{node.kind} at {node.site}: the stored {what} has shape {tuple(stored.shape)}, but "
            f"one row of the selection has shape {row}; it must equal that{allowed}. Compute it "
            "on the same site and positions (vrp.interventions.mean_ablation / reference_pool)."
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class MeanAblate(SiteNode):
    """Replaces the selection with a mean computed on a reference dataset (stored in the graph).

    The mean has one row's shape of the selection, or broadcasts to it (e.g. one value per unit,
    ``d_mlp``, applied at every selected position).
    """

    kind: ClassVar[str] = "mean"
    mean: Float[Tensor, "..."]

    def _check_fields(self) -> None:
        super()._check_fields()
        check_tensor(self, "mean", self.mean, min_ndim=0, fix="vrp.interventions.mean_ablation")

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        _check_row_shape(self, self.mean, part, "mean", broadcast=True)
        return self.mean.to(part).expand_as(part).clone()


@dataclass(frozen=True, kw_only=True, eq=False)
class ResampleAblate(SiteNode):
    """Replaces each row's selection with a draw from a reference pool (seeded, stored)."""

    kind: ClassVar[str] = "resample"
    pool: Float[Tensor, "pool ..."]
    seed: int = 0

    def _check_fields(self) -> None:
        super()._check_fields()
        fix = "vrp.interventions.resample_ablation"
        check_tensor(self, "pool", self.pool, min_ndim=1, fix=fix)
        if len(self.pool) == 0:
            raise field_error(self, "pool", "at least one entry", self.pool, fix)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise field_error(self, "seed", "an int", self.seed, "seed=0")

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        _check_row_shape(self, self.pool[0], part, "pool entry")
        rows = ctx.row_ids(self.run).cpu()
        # Draws come from a CPU generator on purpose: the same seed picks the same pool entries
        # on every device. The pool is stored on the CPU; only the drawn rows move to `part`.
        generator = torch.Generator().manual_seed(self.seed)
        draw = torch.randint(len(self.pool), (int(rows.max()) + 1,), generator=generator)[rows]
        return self.pool[draw].to(part)


@dataclass(frozen=True, kw_only=True, eq=False)
class Patch(SiteNode):
    """Copies the value of run `source` at the site into this node's run (clean into corrupted).

    `source_positions` selects the source's positions when they differ from the target's (same
    count); by default both runs use `site.positions`. A one-row source patches every target row.
    """

    kind: ClassVar[str] = "patch"
    source: str
    source_positions: Positions | None = None

    def _check_fields(self) -> None:
        super()._check_fields()
        if not isinstance(self.source, str) or not self.source:
            raise field_error(self, "source", "a run name", self.source, "source='clean'")
        if self.source_positions is not None and not isinstance(self.source_positions, Positions):
            raise field_error(
                self,
                "source_positions",
                "None or a position selector",
                self.source_positions,
                "source_positions=vrp.LastToken()",
            )

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


@dataclass(frozen=True, kw_only=True, eq=False)
class Assign(SiteNode):
    """Sets the selection to a stored value: patching from a value captured earlier (e.g. by a
    `Capture` of the same site on another run), per row, or one row for every row."""

    kind: ClassVar[str] = "assign"
    value: Float[Tensor, "batch ..."]

    def _check_fields(self) -> None:
        super()._check_fields()
        check_tensor(self, "value", self.value, min_ndim=1, fix="a captured selection")

    def check(self, batch_size: int, n_image_tokens: int) -> None:
        """Raises `GraphError` unless the value has one row, or one per row of the run."""
        rows = int(self.value.shape[0])
        if rows not in (1, batch_size):
            raise GraphError(
                f"assign at {self.site}: the stored value has {rows} rows and the run "
                f"{self.run!r} {batch_size}. Store one row (set on every row) or one per row, "
                "captured from inputs of the same rows."
            )

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        rows = ctx.row_ids(self.run).to(self.value.device)
        value = self.value if self.value.shape[0] == 1 else self.value[rows]
        if value.shape[1:] != part.shape[1:] or value.shape[0] not in (1, part.shape[0]):
            raise ShapeError(
                f"assign at {self.site}: the stored value has shape {tuple(self.value.shape)}, the "
                f"selection {tuple(part.shape)} per run. Store one row, or one per row of the "
                "run, of the selection's shape (capture the same site on aligned inputs)."
            )
        return value.to(part).expand_as(part).clone()


@dataclass(frozen=True, kw_only=True, eq=False)
class Add(SiteNode):
    """Adds `coefficient * direction` (steering); the direction broadcasts over the trailing axes."""

    kind: ClassVar[str] = "add"
    direction: Float[Tensor, "*dims"]
    coefficient: float = 1.0

    def _check_fields(self) -> None:
        super()._check_fields()
        check_tensor(self, "direction", self.direction, min_ndim=1, fix="a d_model vector")
        check_number(self, "coefficient", self.coefficient)

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        trailing = tuple(part.shape[-self.direction.ndim :])
        if tuple(self.direction.shape) != trailing:
            raise ShapeError(
                f"add at {self.site}: direction shape {tuple(self.direction.shape)} does not match "
                f"the selection's trailing axes {trailing}. Pass a direction of shape "
                f"{tuple(part.shape[-1:])} (the site's width)."
            )
        return part + self.coefficient * self.direction.to(part)


@dataclass(frozen=True, kw_only=True, eq=False)
class Scale(SiteNode):
    """Multiplies the selection by `factor`."""

    kind: ClassVar[str] = "scale"
    factor: float

    def _check_fields(self) -> None:
        super()._check_fields()
        check_number(self, "factor", self.factor)

    def apply(self, part: Tensor, ctx: Context) -> Tensor:
        return part * self.factor


@dataclass(frozen=True, kw_only=True, eq=False)
class AttentionKnockout(Node):
    """Blocks attention from `queries` to `keys` at one language layer (all heads, or `heads`).

    Implemented on the attention mask the layer's attention block receives, so softmax
    renormalises over the remaining keys, as in attention-knockout studies.
    """

    kind: ClassVar[str] = "knockout"
    layer: int
    heads: Sequence[int] | None = None  # stored as a tuple
    queries: Positions = field(default_factory=LastToken)
    keys: Positions = field(default_factory=ImageTokens)

    def _check_fields(self) -> None:
        super()._check_fields()
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise field_error(self, "layer", "an int language layer", self.layer, "layer=3")
        if self.heads is not None:
            heads = int_tuple(self.heads)
            if heads is None:
                raise field_error(self, "heads", "None or ints", self.heads, "heads=(0, 2)")
            object.__setattr__(self, "heads", heads)
        for name in ("queries", "keys"):
            if not isinstance(getattr(self, name), Positions):
                raise field_error(
                    self,
                    name,
                    "a position selector",
                    getattr(self, name),
                    f"{name}=vrp.LastToken()",
                )

    @property
    def sites(self) -> tuple[Site, ...]:
        heads = tuple(self.heads) if self.heads is not None else None
        return (Site(layer=self.layer, component=Component.ATTN_PATTERN, heads=heads),)

    def describe(self) -> str:
        heads = "all heads" if self.heads is None else f"heads {list(self.heads)}"
        return f"knockout L{self.layer} {heads}: {self.queries} -/-> {self.keys}"


@dataclass(frozen=True, kw_only=True, eq=False)
class ImagePatchMask(Node):
    """Replaces chosen image tokens (patch-grid indices, row-major) at the projector's output.

    `patches` is one tuple of indices for every row, or one tuple per row of the run (all of the
    same length), e.g. each question's most-attended patches. `fill` is "zero" or "mean" (the
    mean over each image's own tokens).

    Raises:
      GraphError: no patches, a negative or repeated index, or rows of different lengths.
    """

    kind: ClassVar[str] = "patch_mask"
    patches: Sequence[int] | Sequence[Sequence[int]]  # stored as a tuple (of tuples)
    fill: Literal["zero", "mean"] = "mean"

    def _check_fields(self) -> None:
        super()._check_fields()
        if self.fill not in ("zero", "mean"):
            raise field_error(self, "fill", "'zero' or 'mean'", self.fill, "fill='mean'")
        patches: Any = self.patches
        per_row = isinstance(patches, Sequence) and bool(patches) and not is_int(patches[0])
        rows = (
            [int_tuple(r) for r in patches] if per_row else [int_tuple(patches)]
        )  # None where a row is not a sequence of ints
        if isinstance(patches, str | bytes) or any(r is None for r in rows):
            raise field_error(
                self,
                "patches",
                "a sequence of int patch indices, or one such sequence per row",
                patches,
                "patches=(0, 5, 9)",
            )
        checked = [r for r in rows if r is not None]
        if not checked or not checked[0] or len({len(r) for r in checked}) != 1:
            raise GraphError(
                "patch_mask needs a non-empty patch list, the same length for every row; got "
                f"{[len(r) for r in checked]} indices per row. Pass e.g. patches=(0, 5, 9)."
            )
        if any(min(r) < 0 or len(set(r)) != len(r) for r in checked):
            raise GraphError(
                f"patch_mask indices must be distinct and >= 0, got {checked}. List each patch "
                "once, counting from 0."
            )
        object.__setattr__(self, "patches", tuple(checked) if per_row else checked[0])

    @property
    def per_row(self) -> bool:
        return not isinstance(self.patches[0], int)

    @property
    def rows(self) -> tuple[tuple[int, ...], ...]:
        """The patch indices per row (one entry when the same patches apply to every row)."""
        patches: Any = self.patches
        return patches if self.per_row else (patches,)

    @property
    def sites(self) -> tuple[Site, ...]:
        return (Site(tower=Tower.PROJECTOR, layer=0, component=Component.RESID_POST),)

    def check(self, n_rows: int, n_tokens: int) -> None:
        """Raises GraphError unless the patches fit a run of `n_rows` images of `n_tokens` tokens."""
        if self.per_row and len(self.rows) != n_rows:
            raise GraphError(
                f"patch_mask holds patches for {len(self.rows)} rows, the run has {n_rows} rows. "
                "Give one patch tuple per row of the run, or one tuple for every row."
            )
        top = max(max(r) for r in self.rows)
        if top >= n_tokens:
            raise GraphError(
                f"patch_mask index {top} is outside the image's {n_tokens} tokens "
                f"(0..{n_tokens - 1}). Pass patch indices below {n_tokens} (row-major on the "
                "patch grid, see vlm.info(inputs).grid)."
            )

    def apply_tokens(self, tokens: Float[Tensor, "batch patch d_model"], row_ids: Tensor) -> Tensor:
        """`tokens` with this node's patches filled; `row_ids` are the rows' indices in the run."""
        device = tokens.device  # index and fill live where the model runs (CUDA or CPU)
        if self.per_row:
            self.check(len(self.rows), tokens.shape[1])
            index = torch.tensor(self.rows, device=device)[row_ids.to(device)]  # batch k
        else:
            self.check(1, tokens.shape[1])
            index = torch.tensor(self.rows * len(row_ids), device=device)
        if self.fill == "mean":
            fill = tokens.mean(dim=1, keepdim=True).expand(-1, index.shape[1], -1)
        else:
            fill = tokens.new_zeros(tokens.shape[0], index.shape[1], tokens.shape[2])
        out = tokens.clone()
        out.scatter_(1, index[:, :, None].expand(-1, -1, tokens.shape[2]), fill)
        return out

    def describe(self) -> str:
        count = len(self.rows[0])
        scope = "per row" if self.per_row else "in every row"
        return f"patch_mask {count} image tokens {scope} with {self.fill}"


EDGE_SENDERS = frozenset({Component.RESID_PRE, Component.ATTN_OUT, Component.MLP_OUT})
"""Components an edge leaves from: the embeddings (layer 0's input) and each block's output."""
EDGE_RECEIVERS = frozenset({Component.ATTN_IN, Component.MLP_IN, Component.RESID_POST})
"""Components an edge enters: each block's input and the logits (the last layer's output)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class EdgePatch(Node):
    """Patches edges between components: along each edge (sender, receiver), the receiver reads
    the sender's value from run `source` instead of this run's, and nothing else changes.

    The language model's residual stream is the sum of the embeddings and every earlier block's
    output, and each block reads it through its own norm. So receiver `r` reads
    ``stream_r + sum over its patched edges (s, r) of (a_s[source] - a_s[this run])``, this run's
    values taken in the same forward pass: a block whose input was patched passes its changed
    output on along its unpatched edges, and its source value along its patched ones. Patching
    one edge from the clean
    run into the corrupted one is what edge attribution (EAP) estimates; patching every edge
    outside a circuit from the corrupted run into the clean one keeps the circuit and ablates the
    rest; patching all edges of one sender equals patching the sender itself.

    Senders: `RESID_PRE` at layer 0 (the embeddings), `ATTN_OUT`, `MLP_OUT`; receivers:
    `ATTN_IN`, `MLP_IN` and the last layer's `RESID_POST` (the logits); language sites over all
    positions, a sender before its receiver. Both runs must be aligned position by position.
    """

    kind: ClassVar[str] = "edge_patch"
    source: str
    edges: Sequence[tuple[Site, Site]]  # stored as a tuple of (sender, receiver) pairs

    def _check_fields(self) -> None:
        super()._check_fields()
        if not isinstance(self.source, str) or not self.source:
            raise field_error(self, "source", "a run name", self.source, "source='clean'")
        example = "edges=[(Site(layer=0, component=ATTN_OUT), Site(layer=1, component=ATTN_IN))]"
        if isinstance(self.edges, str | bytes) or not isinstance(self.edges, Sequence):
            raise field_error(self, "edges", "(sender, receiver) site pairs", self.edges, example)
        pairs = tuple(tuple(e) if isinstance(e, Sequence) else e for e in self.edges)
        if not pairs or any(
            len(p) != 2 or not all(isinstance(s, Site) for s in p)  # type: ignore[arg-type]
            for p in pairs
        ):
            raise field_error(self, "edges", "(sender, receiver) site pairs", self.edges, example)
        object.__setattr__(self, "edges", pairs)
        for sender, receiver in pairs:
            _check_edge(sender, receiver)
        if len(set(pairs)) != len(pairs):
            raise GraphError(f"{self.describe()}: an edge is listed twice; list each edge once.")

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(dict.fromkeys(site for edge in self.edges for site in edge))

    def describe(self) -> str:
        return f"edge patch of {len(self.edges)} edge(s) from run {self.source!r}"


def _check_edge(sender: Site, receiver: Site) -> None:
    where = f"edge {sender} -> {receiver}"
    fix = (
        "Senders are RESID_PRE at layer 0, ATTN_OUT or MLP_OUT; receivers ATTN_IN, MLP_IN or the "
        "last layer's RESID_POST; language sites over all positions, the sender first."
    )
    plain = all(
        s.tower is Tower.LANGUAGE
        and isinstance(s.positions, AllTokens)
        and s.heads is None
        and s.neurons is None
        and s.dims is None
        for s in (sender, receiver)
    )
    if not plain or sender.component not in EDGE_SENDERS:
        raise GraphError(f"{where}: not an edge. {fix}")
    if receiver.component not in EDGE_RECEIVERS:
        raise GraphError(f"{where}: not an edge. {fix}")
    if sender.component is Component.RESID_PRE and sender.layer != 0:
        raise GraphError(f"{where}: RESID_PRE sends only at layer 0 (the embeddings). {fix}")
    if receiver.order <= sender.order:
        raise GraphError(f"{where}: the receiver comes before its sender. {fix}")


NODE_TYPES: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (Capture, Zero, MeanAblate, ResampleAblate, Patch, Assign, Add, Scale,
                AttentionKnockout, ImagePatchMask, EdgePatch)
}  # fmt: skip


def _encode(value: Any) -> Any:
    if isinstance(value, Site):
        return {"$site": value.to_dict()}
    if isinstance(value, Positions):
        return {"$positions": value.to_dict()}
    if isinstance(value, Tensor):
        return {"$tensor": tensor_to_json(value)}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.dtype != b.dtype:
            return False
        return a.shape == b.shape and bool(torch.equal(a, b))
    return bool(a == b)
