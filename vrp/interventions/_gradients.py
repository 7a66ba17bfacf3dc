"""Gradients of a metric of the answer logits with respect to site values, through nnsight.

Attribution patching needs, at every site of interest, the site's value and the gradient of a
metric (e.g. the yes-minus-no margin) with respect to it, from one forward and one backward pass.
The trace reads each site and writes back a copy of it (so that the copy is what the model
computes with and the gradient reaches it); once the forward pass is done, one plain
`torch.autograd.grad` of the summed metric gives every copy's gradient (the graph the forward
built outlives the trace; faster than reading each gradient through nnsight's backward hooks).

The weights are frozen for the pass (their `requires_grad` is restored afterwards): no weight
gradient is computed or left behind. The earliest site's copy (and any later one that no earlier
site reaches, e.g. after a vision layer the model does not read) is detached and made to require
a gradient, which is what lets the backward pass run with frozen weights; everything the metric
reads comes after it in the forward pass, so every later site's gradient is complete. A site
off the path to the logits (LLaVA's last vision layer, whose output the projector does not read)
gets gradient zero, which is exact: patching it changes nothing either.

On a causal prompt two batches that agree up to a position (the same images and the same tokens
before it, as when a question word is swapped) compute the same values there. `run_cached`
runs one batch keeping its key-value cache; `run_gradients(..., prefix=that.prefix(start))` then
runs the other from `start` on only, its earlier positions' keys and values taken from the
cache: a forward and a backward pass over the differing tail instead of the whole sequence.
"""

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, cast

import nnsight
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import AllTokens, Component, ConfigError, Site, Tower, VrpError
from ..models import VLM, VlmInputs
from ..models._resume import tiled_cache
from ._execute import (
    ExecutionConfig,
    Point,
    _apply_site_nodes,
    _RunContext,
    answer_only,
    compile_points,
    execute_points,
    resolve_backend,
)
from ._graph import Graph
from ._nodes import Capture, Node

GradMetric = Callable[[Float[Tensor, "batch vocab"]], Float[Tensor, " batch"]]
"""Maps answer-position logits to one number per row; its sum over rows is differentiated."""


@dataclass(frozen=True, kw_only=True)
class Gradients:
    """Site values and the gradient of the summed metric with respect to them.

    Attributes:
      sites: the sites, in the order they were asked for.
      values: each site's whole value in its canonical layout (e.g. `(batch, seq, d_model)`,
        `(batch, seq, head, d_head)` for head outputs).
      grads: d(sum over rows of the metric) / d(value), same shapes; row i's gradient is that of
        row i's metric alone (rows do not interact).
      metric: the metric per row.
      answer_logits: the answer-position logits.
      start: the first position `values` and `grads` cover (a run with a `prefix` computes
        only from there; 0 otherwise).
    """

    sites: tuple[Site, ...]
    values: tuple[Tensor, ...]
    grads: tuple[Tensor, ...]
    metric: Float[Tensor, " batch"]
    answer_logits: Float[Tensor, "batch vocab"]
    start: int = 0

    def value(self, site: Site) -> Tensor:
        """The value at `site` (one of `sites`)."""
        return self.values[self.sites.index(site)]

    def grad(self, site: Site) -> Tensor:
        """The gradient at `site` (one of `sites`)."""
        return self.grads[self.sites.index(site)]


def _check_sites(vlm: VLM, sites: Sequence[Site]) -> list[Site]:
    if not sites:
        raise ConfigError("run_gradients needs at least one site; got none.")
    for site in sites:
        if not isinstance(site, Site):
            raise ConfigError(f"run_gradients needs Site values; got {type(site).__name__}.")
        vlm.validate(site)
        if site.heads is not None or site.neurons is not None or site.positions != AllTokens():
            raise ConfigError(
                f"{site}: run_gradients returns whole site values; pass sites without heads, "
                "neurons or positions and select from the result."
            )
        if site.component is Component.ATTN_PATTERN:
            raise ConfigError(
                f"{site}: attention patterns are read-only outputs; take gradients at the "
                "attention or head outputs instead."
            )
    if len(set(sites)) != len(sites):
        raise ConfigError("run_gradients: a site is listed twice; list each site once.")
    return list(sites)


@contextmanager
def _frozen_weights(module: torch.nn.Module) -> Iterator[None]:
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@dataclass(frozen=True, kw_only=True, eq=False)
class Prefix:
    """The positions before `start` of a batch as one run computed them (`CachedRun.prefix`).

    Attributes:
      start: the first position a run resumed from this prefix computes.
      past: the cached keys and values (a `DynamicCache` of every position; those before
        `start` are read).
      position_ids: the position ids that run received (None: derived from the cache position).
      source: the inputs of that run: a run using the prefix must equal them before `start`.
    """

    start: int
    past: Any
    position_ids: Tensor | None
    source: VlmInputs


@dataclass(frozen=True, kw_only=True, eq=False)
class CachedRun:
    """One plain run's values at some sites and its key-value cache (`run_cached`).

    Attributes:
      sites: the sites read.
      values: each site's whole value, in `sites` order.
      answer_logits: the answer-position logits.
      past: the key-value cache.
      position_ids: the position ids the language model received (None: from the cache
        position).
      inputs: the inputs run.
    """

    sites: tuple[Site, ...]
    values: tuple[Tensor, ...]
    answer_logits: Float[Tensor, "batch vocab"]
    past: Any
    position_ids: Tensor | None
    inputs: VlmInputs

    def value(self, site: Site) -> Tensor:
        """The value at `site` (one of `sites`)."""
        return self.values[self.sites.index(site)]

    def prefix(self, start: int) -> Prefix:
        """The positions before `start`, for `run_gradients(..., prefix=)`."""
        return Prefix(start=start, past=self.past, position_ids=self.position_ids,
                      source=self.inputs)  # fmt: skip


def _local(config: ExecutionConfig | None, vlm: VLM, what: str, fix: str) -> ExecutionConfig:
    """`config` (or the defaults) once its backend is checked to be this machine."""
    config = config or ExecutionConfig()
    backend = resolve_backend(config, vlm)
    if backend != "local":
        raise ConfigError(f"{what}; got backend {backend!r}. {fix}")
    return config


def run_cached(
    vlm: VLM, inputs: VlmInputs, sites: Sequence[Site], config: ExecutionConfig | None = None
) -> CachedRun:
    """One plain trace of `inputs` (local, no gradient; `config` for its backend and extra trace
    arguments) reading the whole value at each site and keeping the key-value cache, so that a
    batch agreeing with `inputs` up to a position can resume from there
    (`run_gradients(..., prefix=)`).

    Raises:
      ConfigError: no sites, a site with selectors, an attention pattern or a duplicate; or
        the model handle is not local.
      SiteError: a site does not exist in the model.
    """
    config = _local(config, vlm, "run_cached keeps a key-value cache, which does not travel "
                    "from a server", "Use a local model.")  # fmt: skip
    wanted = _check_sites(vlm, sites)
    _, order = _marked_points(vlm, inputs, wanted)
    model, adapter = vlm.nnsight, vlm.adapter
    arguments = {**answer_only(config).extra, "use_cache": True}
    with torch.no_grad(), model.trace(inputs.data, **arguments):
        store = nnsight.save({})
        store["positions"] = adapter.read_position_ids(model)
        store["values"] = [adapter.read(model, s, inputs, checked=True) for s in order]
        store["logits"] = model.output.logits[:, -1]
        store["past"] = model.output.past_key_values
    read = dict(zip(order, store["values"], strict=True))
    return CachedRun(sites=tuple(wanted), values=tuple(read[s] for s in wanted),
                     answer_logits=store["logits"], past=store["past"],
                     position_ids=store["positions"], inputs=inputs)  # fmt: skip


def shared_prefix(a: VlmInputs, b: VlmInputs) -> int:
    """How many leading positions two batches share on every row: equal images (pixels and
    grids), masks, and token ids before it, and no image token after it (a run resumed there
    does not run the vision tower). 0 when they differ in anything but later text tokens."""
    return 0 if _unshared(a, b) else _first_difference(a, b)


def _unshared(a: VlmInputs, b: VlmInputs) -> str:
    """What keeps two batches from sharing any prefix ("" when nothing does)."""
    if a.batch_size != b.batch_size or a.seq_len != b.seq_len:
        return (f"{a.batch_size} rows of {a.seq_len} tokens against {b.batch_size} rows of "
                f"{b.seq_len}")  # fmt: skip
    if set(a.data) != set(b.data):
        return f"other processor outputs ({sorted(a.data)} against {sorted(b.data)})"
    for key, value in a.data.items():
        other = b.data[key]
        if not torch.is_tensor(value) or not torch.is_tensor(other) or value.shape != other.shape:
            return f"{key!r} of other shapes"
        if key != "input_ids" and not torch.equal(value, other.to(value.device)):
            return f"other {key!r} (images or masks)"
    return ""


def _first_difference(a: VlmInputs, b: VlmInputs) -> int:
    """The first position whose token differs in some row, 0 if none does or an image token
    (of either batch) comes at or after it."""
    differs = (a.data["input_ids"] != b.data["input_ids"].to(a.data["input_ids"].device)).any(0)
    if not bool(differs.any()):
        return 0
    start = int(differs.nonzero()[0, 0])
    images = a.image_mask[:, start:].cpu() | b.image_mask[:, start:].cpu()
    return 0 if bool(images.any()) else start


def _check_prefix(vlm: VLM, inputs: VlmInputs, sites: list[Site], base: Sequence[Node],
                  prefix: object) -> Prefix:  # fmt: skip
    if not isinstance(prefix, Prefix):
        raise ConfigError(
            f"prefix must be a Prefix (CachedRun.prefix) or None; got {prefix!r:.80}."
        )
    start, source = prefix.start, prefix.source
    if isinstance(start, bool) or not isinstance(start, int) or not isinstance(source, VlmInputs):
        raise ConfigError(
            f"a Prefix needs a whole-number start and the VlmInputs it was computed from; got "
            f"start={start!r} and a source of type {type(source).__name__}. Take it from "
            "run_cached(vlm, inputs, sites).prefix(start)."
        )
    if not hasattr(prefix.past, "layers") or (
        prefix.position_ids is not None and prefix.position_ids.shape[-1] != source.seq_len
    ):
        raise ConfigError(
            "a Prefix needs the key-value cache (a transformers Cache) and the position ids of "
            f"a run of its source ({source.seq_len} positions); got past of type "
            f"{type(prefix.past).__name__}. Take it from run_cached(vlm, inputs, sites)."
        )
    if not vlm.adapter.causal_prompt or not vlm.adapter.vision_enters_at_embeddings:
        raise ConfigError(
            f"{vlm.family}'s prompt attends bidirectionally (or its image enters past the "
            f"embeddings): its positions before {start} depend on more than earlier tokens, so "
            "no run can resume from a prefix. Run without prefix."
        )
    if base:
        raise ConfigError("a run from a prefix takes no base nodes (the prefix is another run's).")
    off = [str(s) for s in sites if s.tower is not Tower.LANGUAGE]
    if off:
        raise ConfigError(
            f"a run from a prefix runs the language model's later positions only; {off} are "
            "vision or projector sites. Run without prefix."
        )
    why = _unshared(inputs, source)
    if why:
        raise ConfigError(
            f"these inputs share no prefix with the prefix's run: {why}. Resume only inputs that "
            "equal its run but for later question tokens (shared_prefix(inputs, source) > 0)."
        )
    shared = _first_difference(inputs, source)
    if not 0 < start <= shared:
        raise ConfigError(
            f"these inputs share {shared} leading positions with the prefix's run (the same "
            f"tokens before, no image token after), not the {start} the prefix starts at. Take "
            "the start from shared_prefix(inputs, source)."
        )
    return prefix


def run_gradients(  # noqa: PLR0913  (keyword-only knobs after the data arguments)
    vlm: VLM,
    inputs: VlmInputs,
    sites: Sequence[Site],
    metric: GradMetric,
    config: ExecutionConfig | None = None,
    base: Sequence[Node] = (),
    *,
    prefix: Prefix | None = None,
) -> Gradients:
    """One forward and one backward pass: each site's value and the metric's gradient there.

    Args:
      vlm: the model.
      inputs: one batch.
      sites: whole sites (no heads, neurons or positions selectors), any order.
      metric: maps answer-position logits to one value per row (e.g. `vlm.yes_no_margin`).
      config: extra trace arguments; the backend (the config's, else the handle's) must be
        "local" (nnsight 0.8.1 cannot send a backward context through its serialiser), and the
        memory budget and kept logits do not apply (one trace per call).
      base: nodes defining the model variant differentiated (e.g. attention knockouts or
        ablations), applied in the same pass; their `run` is ignored.
      prefix: the positions before `prefix.start` as another run of inputs equal to these
        there computed them (`run_cached(...).prefix(start)`, causal prompts): only the later
        positions run, and `values` and `grads` cover them alone (`Gradients.start`). The
        gradients there are exact: no earlier position depends on a later one.

    Raises:
      ConfigError: no sites, a site with selectors, an attention-pattern site, a duplicate, a
        backend other than "local", or a prefix these inputs do not share (or with base
        nodes, vision sites or a bidirectional prompt).
      SiteError: a site does not exist in the model.
    """
    config = _local(config, vlm, "run_gradients runs locally only",
                    "nnsight 0.8.1's serialiser cannot carry a backward pass to a server: run "
                    "attribution on a local model, or use exact patching (run_graph) "
                    "remotely.")  # fmt: skip
    wanted = _check_sites(vlm, sites)
    start = 0 if prefix is None else _check_prefix(vlm, inputs, wanted, base, prefix).start
    points, order = _marked_points(vlm, inputs, wanted, base)
    try:
        values, grads, total, logits = _trace(vlm, inputs, points, metric, config, prefix)
    except VrpError:
        raise
    except Exception as error:  # nnsight's and autograd's errors for a site off the path
        raise ConfigError(
            f"run_gradients: the backward pass could not reach every site of "
            f"{[str(s) for s in wanted]} ({type(error).__name__}: {str(error)[:200]}). Every "
            "site must lie on the path to the answer logits: e.g. LLaVA reads its vision "
            "tower's second-to-last layer, so its last vision layer never reaches them. Pass "
            "only sites the answer depends on."
        ) from error
    index = {site: i for i, site in enumerate(order)}
    return Gradients(
        sites=tuple(wanted),
        values=tuple(values[index[s]] for s in wanted),
        grads=tuple(grads[index[s]] for s in wanted),
        metric=total,
        answer_logits=logits,
        start=start,
    )


_MARK = "\0grad"  # names the Capture nodes that only mark where gradients are taken


def _marked_points(
    vlm: VLM, inputs: VlmInputs, sites: list[Site], base: Sequence[Node] = ()
) -> tuple[list[Point], list[Site]]:
    """The forward-ordered points of the model variant `base` with each site marked (validated
    against `inputs`), and the marked sites in that order."""
    variant = tuple(dataclasses.replace(n, run="main") for n in base)
    marks = tuple(Capture(site=s, name=f"{_MARK}{i}") for i, s in enumerate(sites))
    graph = Graph(nodes=variant + marks)
    graph.validate(vlm, {"main": inputs})
    points = compile_points(graph)
    return points, [cast(Site, p.site) for p in points if any(_marks(p))]


def _marks(point: Point) -> list[Node]:
    return [n for n in point.nodes if getattr(n, "name", "").startswith(_MARK)]


def _data(vlm: VLM, inputs: VlmInputs, prefix: Prefix | None) -> dict[str, Any]:
    """The trace's model inputs: the whole batch, or its positions from `prefix.start` on."""
    if prefix is None:
        return dict(inputs.data)
    rows = range(inputs.batch_size)
    past = tiled_cache(prefix.past, rows, prefix.start, 1, vlm.device)  # fresh: not mutated
    positions = prefix.position_ids.to(vlm.device) if prefix.position_ids is not None else None
    return vlm.adapter.resumed_inputs(inputs.data, start=prefix.start, past=past,
                                      position_ids=positions)  # fmt: skip


def _trace(  # noqa: PLR0913
    vlm: VLM,
    inputs: VlmInputs,
    points: list[Point],
    metric: GradMetric,
    config: ExecutionConfig,
    prefix: Prefix | None,
) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
    model, adapter = vlm.nnsight, vlm.adapter
    ctx = _RunContext(inputs, {"main": slice(0, inputs.batch_size)}, {},
                      {"main": torch.arange(inputs.batch_size)})  # fmt: skip
    with _frozen_weights(vlm.hf), torch.enable_grad():
        with model.trace(_data(vlm, inputs, prefix), **answer_only(config).extra):
            held = nnsight.save([])  # the marked values, still part of the autograd graph
            for point in points:
                others = tuple(n for n in point.nodes if n not in _marks(point))
                if point.site is None:  # an attention knockout of the variant
                    execute_points(model, adapter, [point], ctx)
                    continue
                value = adapter.read(model, point.site, inputs, checked=True)
                changed = False
                if others:
                    value, changed = _apply_site_nodes(replace(point, nodes=others), value, ctx)
                if _marks(point):
                    # a leaf where nothing marked before reaches this value (the first site, or
                    # one after sites the model does not read); else a copy in the graph
                    leaf = not value.requires_grad
                    value = value.detach().requires_grad_(True) if leaf else value.clone()
                    held.append(value)
                if changed or _marks(point):
                    adapter.write(model, point.site, inputs, value, checked=True)
            logits = nnsight.save(model.output.logits[:, -1])
        # one plain autograd pass after the trace: the graph the forward built is still alive
        per_row = metric(logits)
        reached = per_row.requires_grad  # False when no site is read on the way to the logits
        grads = (
            torch.autograd.grad(per_row.sum(), list(held), allow_unused=True)
            if reached
            else (None,) * len(held)
        )
    detached = [v.detach() for v in held]
    # a site the metric does not read (LLaVA's last vision layer) has gradient zero
    exact = [
        torch.zeros_like(v) if g is None else g.detach()
        for v, g in zip(detached, grads, strict=True)
    ]
    return detached, exact, per_row.detach(), logits.detach()
