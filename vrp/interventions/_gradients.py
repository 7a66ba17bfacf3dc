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
"""

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import nnsight
import torch
from jaxtyping import Float
from torch import Tensor

from ..core import AllTokens, Component, ConfigError, Site, VrpError
from ..models import VLM, VlmInputs
from ._execute import (
    ExecutionConfig,
    Point,
    _apply_site_nodes,
    _RunContext,
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
    """

    sites: tuple[Site, ...]
    values: tuple[Tensor, ...]
    grads: tuple[Tensor, ...]
    metric: Float[Tensor, " batch"]
    answer_logits: Float[Tensor, "batch vocab"]

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


def run_gradients(
    vlm: VLM,
    inputs: VlmInputs,
    sites: Sequence[Site],
    metric: GradMetric,
    config: ExecutionConfig | None = None,
    base: Sequence[Node] = (),
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

    Raises:
      ConfigError: no sites, a site with selectors, an attention-pattern site, a duplicate, or
        a backend other than "local".
      SiteError: a site does not exist in the model.
    """
    config = config or ExecutionConfig()
    backend = resolve_backend(config, vlm)
    if backend != "local":
        raise ConfigError(
            f"run_gradients runs locally only; got backend {backend!r}. nnsight 0.8.1's "
            "serialiser cannot carry a backward pass to a server: run attribution on a local "
            "model, or use exact patching (run_graph) remotely."
        )
    wanted = _check_sites(vlm, sites)
    variant = tuple(dataclasses.replace(n, run="main") for n in base)
    marks = tuple(Capture(site=s, name=f"{_MARK}{i}") for i, s in enumerate(wanted))
    graph = Graph(nodes=variant + marks)
    graph.validate(vlm, {"main": inputs})
    points = compile_points(graph)
    order = [p.site for p in points if any(_marks(p))]
    try:
        values, grads, total, logits = _trace(vlm, inputs, points, metric, config)
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
    )


_MARK = "\0grad"  # names the Capture nodes that only mark where gradients are taken


def _marks(point: Point) -> list[Node]:
    return [n for n in point.nodes if getattr(n, "name", "").startswith(_MARK)]


def _trace(
    vlm: VLM, inputs: VlmInputs, points: list[Point], metric: GradMetric, config: ExecutionConfig
) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
    model, adapter = vlm.nnsight, vlm.adapter
    ctx = _RunContext(inputs, {"main": slice(0, inputs.batch_size)}, {},
                      {"main": torch.arange(inputs.batch_size)})  # fmt: skip
    with _frozen_weights(vlm.hf), torch.enable_grad():
        with model.trace(inputs.data, **config.extra):
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
