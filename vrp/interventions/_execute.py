"""Compiling a graph into one nnsight trace per batch chunk, and running it.

All runs of a graph travel in one forward pass: their encodings are stacked row-wise into one
left-padded batch (nnsight 0.8 cannot batch image inputs across invokes), and each node acts on its
run's rows. Nodes are grouped per site and emitted in the model's forward order, so users never meet
nnsight's OutOfOrderError; nodes sharing a site apply in graph order with one read and one write.
This module is the only place in VRP that opens traces.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import nnsight
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import (
    Component,
    ConfigError,
    GraphError,
    Indices,
    Site,
    SiteError,
    Tower,
    merge_into,
    select,
)
from ..models import VLM, Adapter, VlmInputs, concat_inputs
from ..models._remote import check_backend, remote_argument
from ._checks import check_units, tower_positions
from ._graph import Graph
from ._nodes import (
    EDGE_RECEIVERS,
    EDGE_SENDERS,
    AttentionKnockout,
    Context,
    EdgePatch,
    ImagePatchMask,
    Node,
    SiteNode,
)
from ._resume import Resume, check_resume, resumed_data

Backend = Literal["local", "serialise"] | str
"""``"local"`` runs in-process; ``"serialise"`` runs through nnsight's ``remote="local"`` round trip
(what a server could not run fails here); an http(s) URL is a server (`vrp serve`)."""


@dataclass(frozen=True, kw_only=True)
class Captured:
    """A captured value with its coordinates."""

    name: str
    run: str
    site: Site
    value: Tensor  # the site's canonical layout, narrowed by its selectors


@dataclass(frozen=True, kw_only=True)
class GraphResult:
    """What running a graph returns: captures by name, and each run's answer-position logits."""

    captures: dict[str, Captured]
    answer_logits: dict[str, Float[Tensor, "batch vocab"]]

    def __getitem__(self, name: str) -> Tensor:
        """The value captured as `name`.

        Raises:
          GraphError: no capture of the graph has that name.
        """
        if name not in self.captures:
            raise GraphError(
                f"no capture named {name!r}; this result holds captures {sorted(self.captures)}. "
                "Use a name given to a Capture node of the graph."
            )
        return self.captures[name].value


@dataclass(frozen=True, kw_only=True)
class Point:
    """One place in the forward pass and the nodes acting there, in graph order.

    Attributes:
      key: (tower, layer, rank within the layer) sort key of the forward order.
      site: the (selector-free) site read and written there; None for an attention-mask point.
      layer: the layer index.
      nodes: the nodes applied there, in graph order.
    """

    key: tuple[int, int, float]
    site: Site | None  # None for an attention-mask point
    layer: int
    nodes: tuple[Node, ...]


_COMPONENT_RANK = {c: float(i) for i, c in enumerate(Component)}
_KNOCKOUT_RANK = _COMPONENT_RANK[Component.ATTN_IN] + 0.5
"""The attention block's input mask: after its norm's input (ATTN_IN), before ATTN_PATTERN."""
_TOWER_RANK = {t: i for i, t in enumerate(Tower)}


def compile_points(graph: Graph) -> list[Point]:
    """The execution plan: the graph's nodes grouped by forward-pass point, in forward order."""
    groups: dict[tuple[int, int, float], list[Node]] = {}
    sites: dict[tuple[int, int, float], Site | None] = {}
    for node in graph.nodes:
        if isinstance(node, AttentionKnockout):
            key = (_TOWER_RANK[Tower.LANGUAGE], node.layer, _KNOCKOUT_RANK)
            sites[key] = None
            groups.setdefault(key, []).append(node)
            continue
        for site in node.sites if isinstance(node, EdgePatch) else node.sites[:1]:
            key = (_TOWER_RANK[site.tower], site.layer, _COMPONENT_RANK[site.component])
            sites[key] = site.whole
            groups.setdefault(key, []).append(node)
    return [Point(key=k, site=sites[k], layer=k[1], nodes=tuple(groups[k])) for k in sorted(groups)]


class _RunContext(Context):
    """Row bookkeeping for the stacked batch, and the capture store, inside one trace."""

    def __init__(
        self,
        inputs: VlmInputs,
        rows: dict[str, slice],
        store: dict[str, Tensor],
        row_ids: dict[str, Tensor],
        offset: int = 0,
    ) -> None:
        self.inputs, self.rows, self.store_, self.row_ids_ = inputs, rows, store, row_ids
        self.offset = offset  # the first position the trace computes (a run resumed at it)
        self.value: Tensor | None = None  # the current point's full value
        self.senders: dict[tuple[int, Site], Tensor] = {}  # edge patches: source - run, per sender

    def mask(self, run: str, site: Site, part: Tensor) -> Tensor:
        rows = self.rows[run]
        if site.tower is Tower.LANGUAGE:  # resolved once per selector for the stacked batch
            whole = site.positions.resolve_cached(
                self.inputs.image_mask, self.inputs.attention_mask
            )
            return whole[rows][:, self.offset :]
        axis = 2 if site.component is Component.ATTN_PATTERN else 1
        mask = torch.zeros(part.shape[0], part.shape[axis], dtype=torch.bool, device=part.device)
        if isinstance(site.positions, Indices):
            mask[:, tower_positions(site, part.shape[axis])] = True
        else:
            mask[:] = True
        return mask

    def source_part(self, run: str, site: Site) -> Tensor:
        rows_value = cast(Tensor, self.value)[self.rows[run]]
        return select(site, rows_value, self.mask(run, site, rows_value))

    def store(self, name: str, value: Tensor) -> None:
        self.store_[name] = value.detach().clone()

    def row_ids(self, run: str) -> Tensor:
        return self.row_ids_[run]


def _writes(node: Node, site: Site) -> bool:
    if isinstance(node, EdgePatch):
        return site.component in EDGE_RECEIVERS
    return isinstance(node, ImagePatchMask) or getattr(node, "writes", False)


def _edge_patch(node: EdgePatch, site: Site, value: Tensor, ctx: _RunContext) -> None:
    """At a sender: keeps (source - this run) of its value; at a receiver: adds the kept
    differences of the senders of its patched edges to this run's rows (in place)."""
    rows = ctx.rows[node.run]
    if site.component in EDGE_SENDERS:
        ctx.senders[(id(node), site)] = value[ctx.rows[node.source]] - value[rows]
        return
    diffs = [ctx.senders[(id(node), s.whole)] for s, r in node.edges if r.order == site.order]
    if diffs:  # summed at float32 or wider, added once (a bfloat16 stream rounds once)
        wide = torch.promote_types(value.dtype, torch.float32)
        total = diffs[0].to(wide, copy=True)  # accumulated: one wide copy, not one per sender
        for diff in diffs[1:]:
            total += diff
        value[rows] = (value[rows].to(wide) + total).to(value.dtype)


def _apply_site_nodes(point: Point, value: Tensor, ctx: _RunContext) -> tuple[Tensor, bool]:
    site = cast(Site, point.site)
    writes = any(_writes(n, site) for n in point.nodes)
    if writes:
        value = value.clone()  # once per point: nodes then edit their runs' rows in place
    ctx.value = value
    for node in point.nodes:
        rows = ctx.rows[node.run]
        if isinstance(node, EdgePatch):
            _edge_patch(node, site, value, ctx)
            continue
        if isinstance(node, ImagePatchMask):
            value[rows] = node.apply_tokens(value[rows], ctx.row_ids(node.run))
            continue
        node = cast(SiteNode, node)
        run_value = value[rows]
        try:
            check_units(node.site, run_value)
            mask = ctx.mask(node.run, node.site, run_value)
            new_part = node.apply(select(node.site, run_value, mask), ctx)
        except SiteError as err:
            raise GraphError(f"{node.describe()}: {err}") from None
        if node.writes:
            merge_into(node.site, run_value, new_part, mask)  # a view of this run's rows
    return value, writes


def _knockout_edit(point: Point, ctx: _RunContext, n_heads: int) -> Any:
    def edit(mask: Tensor) -> Tensor:
        batch, _, queries, keys = mask.shape
        out = mask.expand(batch, n_heads, queries, keys).clone()
        blocked = torch.finfo(out.dtype).min if out.dtype.is_floating_point else False
        for node in cast(tuple[AttentionKnockout, ...], point.nodes):
            rows = ctx.rows[node.run]
            image, attn = ctx.inputs.image_mask[rows], ctx.inputs.attention_mask[rows]
            q = node.queries.resolve(image, attn)[:, -queries:]
            k = node.keys.resolve(image, attn)[:, -keys:]
            cells = q[:, None, :, None] & k[:, None, None, :]  # batch 1 query key
            heads = list(node.heads) if node.heads is not None else list(range(n_heads))
            head_mask = torch.zeros(n_heads, dtype=torch.bool, device=out.device)
            head_mask[heads] = True
            sub = out[rows]
            sub[cells & head_mask[None, :, None, None]] = blocked
            _check_open_keys(node, sub, attn[:, -queries:], blocked)
            out[rows] = sub
        return out

    return edit


def _check_open_keys(node: AttentionKnockout, mask: Tensor, real: Tensor, blocked: Any) -> None:
    """Raises GraphError if a real query would be left with no key to attend to."""
    shut = (mask == blocked).all(dim=-1) & real.bool()[:, None, :]  # batch head query
    if bool(shut.any()):
        row, head, query = (int(i) for i in shut.nonzero()[0])
        raise GraphError(
            f"{node.describe()}: query {query} of row {row} (head {head}) would have no key left "
            "to attend to, and softmax would spread it over masked and padding tokens. Keep at "
            "least one key open for every query, e.g. knock out image keys only."
        )


def execute_points(model: Any, vlm_adapter: Adapter, points: list[Point], ctx: _RunContext) -> None:
    """Inside a trace: visits every point in forward order, applying its nodes."""
    n_heads = vlm_adapter.shape(Tower.LANGUAGE).n_heads
    for point in points:
        if point.site is None:
            vlm_adapter.edit_attention_mask(model, point.layer, _knockout_edit(point, ctx, n_heads))
            continue
        value = vlm_adapter.read(model, point.site, ctx.inputs, checked=True)
        value, changed = _apply_site_nodes(point, value, ctx)
        if changed:
            vlm_adapter.write(model, point.site, ctx.inputs, value, checked=True)


@dataclass(frozen=True, kw_only=True)
class ExecutionConfig:
    """How a graph runs.

    Attributes:
      backend: "local", "serialise" (nnsight's remote="local" check) or a server URL; None
        (the default) runs where the model handle's backend says (`VLM.with_backend`, local
        unless set).
      memory_budget_mb: rows per trace are chosen so that the estimated activation memory of one
        trace (every run's activations and the differences edge patches keep) stays under this
        budget (None: one trace for the whole batch).
      keep_logits: keep each run's answer-position logits ("answer") or nothing ("none").
      plan: "auto" resumes runs that are only patches of shared inputs from the layer (and, on
        causal families, the position) their patches start at, instead of running every layer
        of every copy (same results; see `vrp.interventions._plan`); "off" runs as written.
    """

    backend: Backend | None = None
    memory_budget_mb: float | None = None
    keep_logits: Literal["answer", "none"] = "answer"
    plan: Literal["auto", "off"] = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # passed to model.trace (e.g. api_key)

    def __post_init__(self) -> None:
        """Raises `ConfigError` for a setting of the wrong type or out of range."""
        budget = self.memory_budget_mb
        if self.backend is not None:
            check_backend(self.backend)
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not math.isfinite(budget)
            or budget <= 0
        ):
            raise ConfigError(
                f"memory_budget_mb must be None (one trace) or a finite number of MB > 0; got "
                f"{budget!r}. Pass e.g. memory_budget_mb=2048."
            )
        if self.keep_logits not in ("answer", "none"):
            raise ConfigError(f"keep_logits must be 'answer' or 'none'; got {self.keep_logits!r}.")
        if self.plan not in ("auto", "off"):
            raise ConfigError(f"plan must be 'auto' or 'off'; got {self.plan!r}.")
        if not isinstance(self.extra, dict):
            raise ConfigError(
                f"extra must be a dict of model.trace keyword arguments; got {self.extra!r}."
            )


def answer_only(config: ExecutionConfig | None = None) -> ExecutionConfig:
    """`config` (default settings if None) whose traces compute the logits at the last (answer)
    position only, the only ones VRP reads: the unembedding of every other position (a large
    share of the pass with a large vocabulary), and its backward pass, are skipped. Its own
    `extra` trace arguments have the last word."""
    given = config or ExecutionConfig()
    return replace(given, extra={"logits_to_keep": 1, **given.extra})


def resolve_backend(config: ExecutionConfig | None, vlm: VLM) -> str:
    """The backend a trace runs on: the config's, else the model handle's (`VLM.with_backend`)."""
    return config.backend if config is not None and config.backend is not None else vlm.backend


def _rows_per_trace(
    vlm: VLM, inputs: VlmInputs, n_runs: int, config: ExecutionConfig, graph: Graph | None = None
) -> int:
    budget_mb = config.memory_budget_mb
    if budget_mb is None:
        return inputs.batch_size
    held = bytes_per_row(vlm, inputs.seq_len, _logit_positions(config)) * n_runs
    if graph is not None:
        held += edge_bytes_per_row(vlm, graph, inputs.seq_len)
    return max(1, min(inputs.batch_size, int(budget_mb // max(held / 2**20, 1e-9))))


def edge_bytes_per_row(vlm: VLM, graph: Graph, seq_len: int) -> int:
    """Bytes one row holds for the graph's edge patches beyond the runs' own activations: each
    `EdgePatch` keeps one (source - this run) difference per sender, a residual-width tensor
    over every position, from its sender until the trace ends."""
    senders = sum(len({s for s, _ in n.edges}) for n in graph.nodes if isinstance(n, EdgePatch))
    width = next(vlm.hf.parameters()).element_size()
    return senders * seq_len * vlm.adapter.shape(Tower.LANGUAGE).d_model * width


def bytes_per_row(vlm: VLM, seq_len: int, logit_positions: int | None = None) -> int:
    """Estimated activation bytes one row of one run holds in a forward of `seq_len` tokens.

    Per language layer about four residual-width tensors, the MLP hidden and one attention map,
    in the model's own dtype (2 bytes in bfloat16, 4 in float32); plus the logits at
    `logit_positions` positions (None: every position), counted at 4 bytes since several
    families' heads upcast them to float32. Full logits dominate for large vocabularies:
    PaliGemma's 257,216 tokens take about 1 MB per position; the executor's traces keep the
    answer position's only (`answer_only`).
    """
    shape = vlm.adapter.shape(Tower.LANGUAGE)
    width = next(vlm.hf.parameters()).element_size()
    per_layer = seq_len * (shape.d_model * 4 + shape.d_mlp + shape.n_heads * seq_len) * width
    vocab = int(vlm.adapter.unembedding(vlm.hf).shape[1])
    kept = seq_len if logit_positions is None else min(logit_positions, seq_len)
    return shape.n_layers * per_layer + kept * vocab * 4


def _logit_positions(config: ExecutionConfig) -> int | None:
    """How many positions' logits a trace of `config` computes (`answer_only`'s one, unless its
    `extra` asks otherwise; None: every position, or positions given as indices)."""
    kept = answer_only(config).extra["logits_to_keep"]
    return kept if isinstance(kept, int) and not isinstance(kept, bool) and kept > 0 else None


def run_graph(
    vlm: VLM,
    graph: Graph,
    inputs: VlmInputs | Mapping[str, VlmInputs],
    config: ExecutionConfig | None = None,
    *,
    resume: Resume | None = None,
) -> GraphResult:
    """Validates `graph` against `vlm` and its inputs, then runs it in as few traces as the memory
    budget allows.

    Args:
      vlm: the model.
      graph: the interventions.
      inputs: one batch (for a single-run graph) or a batch per run name.
      config: backend, memory budget and what to keep.
      resume: start the language model at a layer, with the residual stream entering it
        captured once from a run of the same inputs (`Resume`): the layers below are not run.
        Every run must encode the same inputs and no node may act below the layer.

    Returns:
      Captures concatenated over chunks, and answer-position logits per run.

    Raises:
      GraphError: the graph does not fit the model or the inputs, or `resume` does not fit them.
    """
    config = config or ExecutionConfig()
    runs = _check_arguments(vlm, graph, inputs, config)
    graph.validate(vlm, runs)
    if resume is not None:
        check_resume(vlm, graph, runs, resume)
        if resume.start and resolve_backend(config, vlm) != "local":
            raise GraphError(
                "a run resumed at a position reads cached keys and values, which do not travel "
                "to a server; resume at start=0 on a remote backend (layers are still skipped)."
            )

    def checked(g: Graph, inputs: Mapping[str, VlmInputs], at: Resume | None) -> GraphResult:
        g.validate(vlm, inputs)  # a planned part meets every check the whole graph meets
        if at is not None:
            check_resume(vlm, g, inputs, at)
        return _execute(vlm, g, inputs, config, at)

    if resume is None and config.plan == "auto":
        from ._plan import run_planned  # the planner runs its parts through `checked`

        planned = run_planned(vlm, graph, runs, config, checked)
        if planned is not None:
            return planned
    return _execute(vlm, graph, runs, config, resume)


def _execute(
    vlm: VLM,
    graph: Graph,
    runs: Mapping[str, VlmInputs],
    config: ExecutionConfig,
    resume: Resume | None,
) -> GraphResult:
    """Runs a validated graph as written, in as few traces as the memory budget allows."""
    points = compile_points(graph)
    largest = max(graph.runs, key=lambda r: runs[r].batch_size)
    size = runs[largest].batch_size
    step = _rows_per_trace(vlm, runs[largest], len(graph.runs), config, graph)
    chunks = [_run_chunk(vlm, graph, points, runs, range(i, min(i + step, size)), config, resume)
              for i in range(0, size, step)]  # fmt: skip
    broadcast = {r for r in graph.runs if runs[r].batch_size == 1 and size > 1}
    return _merge_chunks(graph, chunks, broadcast)


def _check_arguments(
    vlm: object, graph: object, inputs: object, config: object
) -> dict[str, VlmInputs]:
    """The inputs by run name, once every argument has its documented type."""
    if not isinstance(vlm, VLM):
        raise ConfigError(
            f"run_graph needs a vrp.VLM as its model; got {type(vlm).__name__}. Load one with "
            "vrp.load(...)."
        )
    if not isinstance(graph, Graph):
        raise GraphError(
            f"run_graph needs a Graph; got {type(graph).__name__}. Build one with "
            "vrp.interventions.graph(node, ...)."
        )
    if not isinstance(config, ExecutionConfig):
        raise ConfigError(f"config must be an ExecutionConfig or None; got {config!r:.60}.")
    single = graph.runs[0] if graph.runs else "main"  # an empty runs tuple fails in validate
    runs: dict[str, Any] = dict(inputs) if isinstance(inputs, Mapping) else {single: inputs}
    bad = {
        name: type(value).__name__
        for name, value in runs.items()
        if not isinstance(value, VlmInputs)
    }
    if bad:
        raise GraphError(
            f"run_graph needs VlmInputs (from vlm.encode) or a dict of run name -> VlmInputs; got "
            f"{bad}. Encode each batch with vlm.encode(images, questions)."
        )
    return runs


def _run_chunk(
    vlm: VLM,
    graph: Graph,
    points: list[Point],
    runs: Mapping[str, VlmInputs],
    rows: range,
    config: ExecutionConfig,
    resume: Resume | None = None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    parts, slices, start, row_ids = [], {}, 0, {}
    for name in graph.runs:
        run = runs[name]
        whole = run.batch_size == 1 or len(rows) == run.batch_size
        part = run if whole else run.rows(list(rows), trim=False)  # same seq axis in every chunk
        row_ids[name] = torch.arange(run.batch_size) if whole else torch.tensor(list(rows))
        if resume is not None:  # a resumed trace reads no pixels: do not stack them
            part = replace(part, data=vlm.adapter.resumed_inputs(part.data))
        parts.append(part)
        slices[name] = slice(start, start + part.batch_size)
        start += part.batch_size
    stacked = concat_inputs(parts) if len(parts) > 1 else parts[0]
    model = vlm.nnsight
    data = stacked.data if resume is None else resumed_data(vlm, stacked, resume, rows, len(parts))
    offset = resume.start if resume is not None else 0
    with (
        torch.no_grad(),
        model.trace(
            data, remote=remote_argument(resolve_backend(config, vlm)), **answer_only(config).extra
        ),
    ):
        store = nnsight.save({})
        ctx = _RunContext(stacked, slices, store, row_ids, offset)
        if resume is not None:  # every run reads the same inputs: tile the chunk's stream
            hidden = resume.hidden[rows.start : rows.stop, resume.start :].to(vlm.device)
            shared = hidden.repeat(len(graph.runs), *([1] * (hidden.dim() - 1)))
            vlm.adapter.skip_language_layers(model, resume.layer, shared)
        execute_points(model, vlm.adapter, points, ctx)
        logits = (
            nnsight.save(model.output.logits[:, -1]) if config.keep_logits == "answer" else None
        )
    answer = {n: logits[s] for n, s in slices.items()} if logits is not None else {}
    return dict(store), answer


def _merge_chunks(
    graph: Graph, chunks: list[tuple[dict[str, Tensor], dict[str, Tensor]]], broadcast: set[str]
) -> GraphResult:
    """Concatenates chunk outputs; a one-row (broadcast) run ran in every chunk: keep it once."""

    def join(values: list[Tensor], run: str) -> Tensor:
        return values[0] if run in broadcast or len(values) == 1 else torch.cat(values)

    captures: dict[str, Captured] = {}
    for node in graph.nodes:
        name = getattr(node, "name", None)
        if name is not None:
            value = join([c[0][name] for c in chunks], node.run)
            captures[name] = Captured(name=name, run=node.run, site=node.sites[0], value=value)
    logits = {r: join([c[1][r] for c in chunks], r) for r in chunks[0][1]}
    return GraphResult(captures=captures, answer_logits=logits)
