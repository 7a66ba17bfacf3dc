"""Edge attribution patching (EAP, and EAP-IG): the effect of each component's output on each
later component's input, from the same 2 forward + 1 backward passes as node attribution (or
k forward and backward passes for the integrated-gradients variant).

In a pre-norm transformer every block reads the residual stream, the sum of the embeddings and of
every earlier block's output. Patching an upstream output `u` from the clean run into the input
of ONE downstream block `v` (and nowhere else) changes the metric by about
``(a_u,clean - a_u,corrupt) . g_v``, with `g_v` the part of the metric's gradient on the residual
stream that flows through block `v`. The residual-stream gradients give every `g_v` by
differences (each per position):

- through layer l's attention block: ``grad(resid_pre_l) - grad(attn_out_l)`` (``attn_out_l``'s
  gradient is the stream's gradient between attention and MLP);
- through layer l's MLP block: ``grad(attn_out_l) - grad(mlp_out_l)``;
- straight to the logits: ``grad(resid_post_last)``.

Upstream nodes are the embeddings (the input of layer 0: image and text tokens) and every
attention and MLP output; an edge exists from each to every block after it and to the logits.
The scores of one upstream node's edges sum exactly to its node attribution (the residual
stream's gradients telescope), which the tests check.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from vrp import Component, ConfigError, Site
from vrp.core import TidyRecords
from vrp.models import VLM, VlmInputs

from ._attribution import _check_pair, _gradients
from ._sweep import Metric


@dataclass(frozen=True, kw_only=True)
class EdgeAttribution(TidyRecords):
    """Attribution of every edge between components.

    Attributes:
      upstream: the edges' sources: "embed", then "attn<l>" and "mlp<l>" in forward order.
      downstream: the edges' targets: "attn<l>" and "mlp<l>" in forward order, then "logits".
      scores: `(batch, upstream, downstream)` estimates summed over positions; NaN where no
        edge exists (a target before its source).
      clean_metric: each row's clean metric.
      corrupt_metric: each row's corrupted metric.
    """

    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    scores: Float[Tensor, "batch upstream downstream"] = field(repr=False)
    clean_metric: Float[Tensor, " batch"]
    corrupt_metric: Float[Tensor, " batch"]

    def pooled(self) -> Float[np.ndarray, "upstream downstream"]:
        """Each edge's estimate oriented towards the clean answer and pooled over rows, in units
        of the mean |clean - corrupt| gap (the scale of `node_attribution`).

        Raises:
          ConfigError: the clean and corrupted runs score the same on every row.
        """
        gap = (self.clean_metric - self.corrupt_metric).float().cpu()
        if float(gap.abs().mean()) == 0:
            raise ConfigError("the clean and corrupted runs score the same on every row.")
        oriented = torch.sign(gap)[:, None, None] * self.scores.float().cpu()
        return (oriented.mean(dim=0) / gap.abs().mean()).numpy()

    def top(self, k: int) -> list[tuple[str, str, float]]:
        """The `k` edges of largest |pooled score|, as (source, target, score)."""
        pooled = self.pooled()
        flat = np.where(np.isnan(pooled), 0.0, np.abs(pooled)).ravel()
        picked = np.argsort(-flat, kind="stable")[:k]
        width = len(self.downstream)
        return [(self.upstream[i // width], self.downstream[i % width],
                 float(pooled.ravel()[i])) for i in picked]  # fmt: skip

    def to_records(self) -> list[dict[str, Any]]:
        """One row per existing edge per batch row: source, target, row, estimate."""
        values = self.scores.float().cpu()
        return [
            {"source": u, "target": v, "row": row, "estimate": float(values[row, i, j])}
            for row in range(values.shape[0])
            for i, u in enumerate(self.upstream)
            for j, v in enumerate(self.downstream)
            if not torch.isnan(values[row, i, j])
        ]


def _sites(n_layers: int) -> list[Site]:
    out = []
    for layer in range(n_layers):
        out += [Site(layer=layer, component=c)
                for c in (Component.RESID_PRE, Component.ATTN_OUT, Component.MLP_OUT)]  # fmt: skip
    return [*out, Site(layer=n_layers - 1, component=Component.RESID_POST)]


def edge_attribution(
    vlm: VLM, clean: VlmInputs, corrupt: VlmInputs, metric: Metric, *, ig_steps: int | None = None
) -> EdgeAttribution:
    """Estimates every edge's patching effect (see the module doc) over the language model.

    Args:
      vlm: the model.
      clean: source rows.
      corrupt: target rows, aligned with `clean` position by position.
      metric: maps answer-position logits to one number per row.
      ig_steps: None for EAP (gradients at the corrupted run); k >= 1 for EAP-IG: gradients
        averaged over k runs whose input embeddings lie at the midpoints of the line from the
        corrupted to the clean input (see `attribution_patching`).

    Raises:
      ConfigError: misaligned rows, or `ig_steps` below 1.
    """
    _check_pair(clean, corrupt)
    n = vlm.adapter.n_layers
    sites = _sites(n)
    clean_run, corrupt_values, grads, corrupt_metric, _ = _gradients(
        vlm, clean, corrupt, sites, metric, config=None, base=(), ig_steps=ig_steps
    )
    index = {site: i for i, site in enumerate(sites)}
    outputs = [s for s in sites if s.component in (Component.ATTN_OUT, Component.MLP_OUT)]
    wanted = [Site(layer=0, component=Component.RESID_PRE), *outputs]
    real = corrupt.attention_mask.bool()[..., None]
    deltas = [torch.where(real, clean_run[f"s{index[s]}"] - corrupt_values[index[s]], 0.0)
              for s in wanted]  # fmt: skip
    through = []  # the gradient flowing through each downstream block, in forward order
    for layer in range(n):
        pre, mid, post = (grads[index[Site(layer=layer, component=c)]] for c in
                          (Component.RESID_PRE, Component.ATTN_OUT, Component.MLP_OUT))  # fmt: skip
        through += [pre - mid, mid - post]
    through.append(grads[index[sites[-1]]])
    upstream = ("embed", *(f"{'attn' if s.component is Component.ATTN_OUT else 'mlp'}{s.layer}"
                           for s in outputs))  # fmt: skip
    downstream = (*(f"{kind}{layer}" for layer in range(n) for kind in ("attn", "mlp")), "logits")
    scores = torch.full((corrupt.batch_size, len(upstream), len(downstream)), float("nan"))
    for i, delta in enumerate(deltas):
        for j, grad in enumerate(through):
            if j >= i:  # targets after the source (the logits come after every source)
                scores[:, i, j] = (delta.float() * grad.float()).sum(dim=(1, 2)).cpu()
    return EdgeAttribution(upstream=upstream, downstream=downstream, scores=scores,
                           clean_metric=metric(clean_run.answer_logits["main"]).detach(),
                           corrupt_metric=corrupt_metric)  # fmt: skip
