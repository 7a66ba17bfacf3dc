"""Attribution patching (AtP): every node's patching effect estimated from one backward pass.

Exact activation patching costs one forward pass per patched cell. Attribution patching replaces
it with a first-order estimate: patching site value `a` from the clean run into the corrupted run
changes the metric by about ``(a_clean - a_corrupt) . dM/da`` at the corrupted run. One forward
pass of the clean run (its values), one forward and one backward pass of the corrupted run
(values and gradients, `vrp.interventions.run_gradients`) give the estimate for every site,
position, head and neuron at once. Where the two runs agree up to a position on a causal prompt
(the same image, a question word swapped), the corrupted run computes and differentiates only
from that position on, on the clean run's cached keys and values (`run_cached`), and every
earlier cell scores exactly 0 (both runs hold the same value there). Only the answer position's
logits are computed in either run.

Granularity follows the component: a residual, attention or MLP output gets one score per
position (the dot product over the model width), a head output one per position and head (over
the head width), an MLP neuron one per position and neuron (no sum). The estimate is exact for a
metric linear in the site and degrades where the model is strongly non-linear between the site
and the metric (saturated attention, the final norm of a large patch), so `agreement` compares it
with exact patching of the same cells.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float
from numpy.typing import ArrayLike
from scipy import stats
from torch import Tensor

from vrp import Component, ConfigError, Site, Tower
from vrp.core import TidyRecords
from vrp.interventions import (
    Add,
    Capture,
    Captured,
    ExecutionConfig,
    Graph,
    GraphResult,
    Node,
    answer_only,
    resolve_backend,
    run_cached,
    run_gradients,
    run_graph,
    shared_prefix,
)
from vrp.models import VLM, VlmInputs

from ._sweep import Metric

_PER_UNIT = {Component.HEAD_OUT: "head", Component.MLP_NEURONS: "neuron"}


@dataclass(frozen=True, kw_only=True)
class Attribution(TidyRecords):
    """Attribution-patching estimates of patching clean values into the corrupted run.

    Attributes:
      sites: the whole sites attributed, in the order asked.
      scores: per site, the estimated metric change per row and position: `(batch, seq)`; head
        outputs `(batch, seq, head)`; MLP neurons `(batch, seq, neuron)`. Zero at padding.
      clean_metric: the metric of each row's clean run.
      corrupt_metric: the metric of each row's corrupted run.
      image_mask: which positions hold image tokens.
      attention_mask: which positions are real (not padding).
      grids: each row's image patch grid (rows, columns), in image-token order.
      token_grids: per site, None for a language site, else where each of its tokens lies on
        its patch grid and the grid (`Adapter.token_grid`).
    """

    sites: tuple[Site, ...]
    scores: tuple[Tensor, ...] = field(repr=False)
    clean_metric: Float[Tensor, " batch"]
    corrupt_metric: Float[Tensor, " batch"]
    image_mask: Bool[Tensor, "batch seq"] = field(repr=False)
    attention_mask: Tensor = field(repr=False)
    grids: tuple[tuple[int, int], ...] = ()
    token_grids: tuple[tuple[Tensor, tuple[int, int]] | None, ...] = ()

    def image_grid(self, site: Site, row: int) -> Float[np.ndarray, "grid_h grid_w"]:
        """Row `row`'s scores at its image tokens laid out on the patch grid (a heatmap of
        where in the image patching matters); head and neuron scores are summed over units.
        A vision-tower site is laid out on the tower's own patch grid (a token on no patch,
        CLIP's class token, left out).

        Raises:
          ConfigError: `site` was not attributed, or the row's image tokens do not fill its grid.
        """
        score = self.score(site)[row].float().cpu()
        per_position = score.reshape(score.shape[0], -1).sum(dim=1)
        layout = self.token_grids[self.sites.index(site)] if self.token_grids else None
        if layout is not None:
            index, (rows, cols) = layout
            placed = np.zeros(rows * cols)
            on_grid = index >= 0
            placed[index[on_grid].numpy()] = per_position[on_grid].numpy()
            return placed.reshape(rows, cols)
        values = per_position[self.image_mask[row].cpu()].numpy()
        rows, cols = self.grids[row]
        if values.size != rows * cols:
            raise ConfigError(
                f"row {row} has {values.size} image tokens, not the {rows}x{cols} grid; "
                "a heatmap needs one token per grid cell."
            )
        return values.reshape(rows, cols)

    def score(self, site: Site) -> Tensor:
        """The scores of `site` (one of `sites`).

        Raises:
          ConfigError: `site` was not attributed.
        """
        if site not in self.sites:
            raise ConfigError(f"{site} was not attributed; sites: {[str(s) for s in self.sites]}.")
        return self.scores[self.sites.index(site)]

    def to_records(self) -> list[dict[str, Any]]:
        """One row per site, batch row, real position (and head or neuron): tower, layer,
        component, position (a vision or projector site's token), whether it is an image token
        (on a patch), unit (head or neuron index, else None) and the estimate; the row's clean
        and corrupted metric."""
        rows: list[dict[str, Any]] = []
        clean, corrupt = self.clean_metric.tolist(), self.corrupt_metric.tolist()
        for i, (site, score) in enumerate(zip(self.sites, self.scores, strict=True)):
            values = score.float().cpu()
            for row, pos, image in self._cells(i, values):
                units = values[row, pos].reshape(-1).tolist()
                for unit, value in enumerate(units):
                    rows.append({"tower": site.tower.value, "layer": site.layer,
                                 "component": site.component.value, "row": row,
                                 "position": pos, "image": image,
                                 "unit": unit if site.component in _PER_UNIT else None,
                                 "estimate": value, "clean": clean[row],
                                 "corrupt": corrupt[row]})  # fmt: skip
        return rows

    def _cells(self, index: int, values: Tensor) -> list[tuple[int, int, bool]]:
        """(row, position, on an image patch) of every real cell of site `index`: the language
        model's real positions, or every token of a vision or projector site."""
        layout = self.token_grids[index] if self.token_grids else None
        if layout is None:
            image = self.image_mask.cpu()
            real = self.attention_mask.bool().cpu().nonzero().tolist()
            return [(row, pos, bool(image[row, pos])) for row, pos in real]
        on_grid = (layout[0] >= 0).tolist()
        return [(row, pos, on_grid[pos]) for row in range(values.shape[0])
                for pos in range(values.shape[1])]  # fmt: skip


def _check_pair(clean: VlmInputs, corrupt: VlmInputs) -> None:
    same = (
        clean.batch_size == corrupt.batch_size
        and clean.seq_len == corrupt.seq_len
        and bool(torch.equal(clean.image_mask.cpu(), corrupt.image_mask.cpu()))
        and bool(torch.equal(clean.attention_mask.cpu(), corrupt.attention_mask.cpu()))
    )
    if not same:
        raise ConfigError(
            f"attribution patching pairs rows position by position: clean has "
            f"{clean.batch_size} rows of {clean.seq_len} tokens, corrupt {corrupt.batch_size} of "
            f"{corrupt.seq_len}, and their image and padding layouts must be equal. Pair prompts "
            "whose tokens line up (circuits.patch_pairs reports which pairs are aligned)."
        )


def attribution_patching(  # noqa: PLR0913  (keyword-only knobs after the data arguments)
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    sites: Sequence[Site],
    metric: Metric,
    *,
    config: ExecutionConfig | None = None,
    base: Sequence[Node] = (),
    ig_steps: int | None = None,
) -> Attribution:
    """Estimates the effect of patching every position (and head or neuron) of `sites` from the
    clean run into the corrupted one: 2 forward passes and 1 backward pass in all (the second
    forward and the backward over the positions from the first difference on, where the rows
    share an image and a causal prompt; see the module doc).

    Args:
      vlm: the model.
      clean: source rows.
      corrupt: target rows, aligned with `clean` position by position.
      sites: whole sites (no selectors), e.g. every layer's attention and MLP outputs.
      metric: maps answer-position logits to one number per row (`vlm.yes_no_margin`).
      config: extra trace arguments (local backend only, see `run_gradients`).
      base: nodes defining the model variant (e.g. attention knockouts), applied to both runs.
      ig_steps: None for plain AtP (the gradient at the corrupted run); k >= 1 for the
        integrated-gradients variant (AtP-IG, as EAP-IG): the gradient averaged over k runs
        whose language-model input embeddings lie at the midpoints (i + 0.5) / k of the line
        from the corrupted to the clean input. Costs k forward and backward passes plus 2
        forwards; more faithful where the model is non-linear between the input and the site.

    Raises:
      ConfigError: misaligned rows, no sites, sites with selectors, or `ig_steps` below 1.
      SiteError: a site does not exist in the model.
    """
    _check_pair(clean, corrupt)
    clean_run, corrupt_values, grads, corrupt_metric, ordered = _gradients(
        vlm, clean, corrupt, sites, metric, config=config, base=base, ig_steps=ig_steps
    )
    real = corrupt.attention_mask.bool()
    scores = []
    for i, site in enumerate(ordered):
        product = (clean_run[f"s{i}"].float() - corrupt_values[i].float()) * grads[i].float()
        per = product if site.component is Component.MLP_NEURONS else product.sum(dim=-1)
        if site.tower is not Tower.LANGUAGE:  # every vision and projector token is real
            scores.append(per.detach())
            continue
        mask = real.reshape(*real.shape, *([1] * (per.dim() - 2)))
        scores.append(torch.where(mask, per, torch.zeros_like(per)).detach())
    return Attribution(
        sites=ordered,
        scores=tuple(scores),
        clean_metric=metric(clean_run.answer_logits["main"]).detach(),
        corrupt_metric=corrupt_metric,
        image_mask=corrupt.image_mask,
        attention_mask=corrupt.attention_mask,
        grids=corrupt.grids,
        token_grids=tuple(
            None if s.tower is Tower.LANGUAGE else vlm.adapter.token_grid(s, corrupt)
            for s in ordered
        ),
    )


_EMBED = Site(layer=0, component=Component.RESID_PRE)
"""The language model's input embeddings (image features merged in), where IG interpolates."""


def _gradients(  # noqa: PLR0913
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    sites: Sequence[Site],
    metric: Metric,
    *,
    config: ExecutionConfig | None,
    base: Sequence[Node],
    ig_steps: int | None,
) -> tuple[GraphResult, list[Tensor], list[Tensor], Tensor, tuple[Site, ...]]:
    """The clean run's captures ("s<i>"), the corrupted values and the (integrated) gradients of
    each site, the corrupted metric, and the sites in that order."""
    if ig_steps is not None and (isinstance(ig_steps, bool) or not isinstance(ig_steps, int)
                                 or ig_steps < 1):  # fmt: skip
        raise ConfigError(
            f"ig_steps must be None (plain attribution patching) or a whole number >= 1 of "
            f"integrated-gradient steps; got {ig_steps!r}. EAP-IG uses 5 to 50."
        )
    backend = resolve_backend(config, vlm)
    if backend != "local":  # before any trace is sent anywhere
        raise ConfigError(
            f"attribution patching takes gradients, which run locally only; got backend "
            f"{backend!r}. Use a local model (or exact patching, which runs remotely)."
        )
    ordered = tuple(sites)
    start = _shared_start(vlm, clean, corrupt, ordered, base, ig_steps)
    if start:
        return _from_prefix(vlm, clean, corrupt, ordered, metric, start, config)
    variant = tuple(dataclasses.replace(n, run="main") for n in base)
    embed = (Capture(site=_EMBED, name="embed"),) if ig_steps is not None else ()
    capture = Graph(nodes=variant + embed + tuple(Capture(site=s, name=f"s{i}")
                                                  for i, s in enumerate(ordered)))  # fmt: skip
    clean_run = run_graph(vlm, capture, clean, answer_only(config))
    if ig_steps is None:
        plain = run_gradients(vlm, corrupt, ordered, metric, config, base=base)
        return clean_run, list(plain.values), list(plain.grads), plain.metric, plain.sites
    corrupt_run = run_graph(vlm, capture, corrupt, answer_only(config))
    direction = clean_run["embed"] - corrupt_run["embed"]
    grads = integrated_gradients(vlm, corrupt, ordered, metric, direction, ig_steps,
                                 config=config, base=base)  # fmt: skip
    values = [corrupt_run[f"s{i}"] for i in range(len(ordered))]
    return clean_run, values, grads, metric(corrupt_run.answer_logits["main"]).detach(), ordered


def _shared_start(  # noqa: PLR0913
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    sites: tuple[Site, ...],
    base: Sequence[Node],
    ig_steps: int | None,
) -> int:
    """The position the corrupted run can start at, 0 where it must run whole: on a causal
    prompt, plain AtP on language sites of the model as it is, with the two batches equal up to
    a position (same images, a word swapped late in the question)."""
    adapter = vlm.adapter
    if ig_steps is not None or base or not adapter.causal_prompt:
        return 0
    if not adapter.vision_enters_at_embeddings:  # the tail would not see the image
        return 0
    if any(s.tower is not Tower.LANGUAGE for s in sites):
        return 0
    return shared_prefix(clean, corrupt)


def _from_prefix(  # noqa: PLR0913
    vlm: VLM,
    clean: VlmInputs,
    corrupt: VlmInputs,
    sites: tuple[Site, ...],
    metric: Metric,
    start: int,
    config: ExecutionConfig | None,
) -> tuple[GraphResult, list[Tensor], list[Tensor], Tensor, tuple[Site, ...]]:
    """`_gradients` for batches that agree before `start`: the clean run keeps its cache and the
    corrupted run computes (and differentiates) only from `start` on. Before `start` both runs
    hold the same values, so patching there changes nothing: the corrupted values are taken to be
    the clean ones and the gradient zero, which makes those scores exactly 0."""
    cached = run_cached(vlm, clean, sites, config)  # one trace: no memory budget applies
    tail = run_gradients(vlm, corrupt, sites, metric, config, prefix=cached.prefix(start))
    values, grads = [], []
    for whole, part, grad in zip(cached.values, tail.values, tail.grads, strict=True):
        values.append(torch.cat([whole[:, :start], part.to(whole.dtype)], dim=1))
        grads.append(torch.cat([torch.zeros_like(whole[:, :start]), grad.to(whole.dtype)], dim=1))
    clean_run = GraphResult(
        captures={f"s{i}": Captured(name=f"s{i}", run="main", site=s, value=v)
                  for i, (s, v) in enumerate(zip(sites, cached.values, strict=True))},
        answer_logits={"main": cached.answer_logits},
    )  # fmt: skip
    return clean_run, values, grads, tail.metric, sites


def integrated_gradients(  # noqa: PLR0913
    vlm: VLM,
    corrupt: VlmInputs,
    sites: Sequence[Site],
    metric: Metric,
    direction: Float[Tensor, "batch seq d_model"],
    steps: int,
    *,
    config: ExecutionConfig | None = None,
    base: Sequence[Node] = (),
) -> list[Tensor]:
    """The metric's gradient at each site, averaged over `steps` runs of `corrupt` whose input
    embeddings are moved by ``(i + 0.5) / steps * direction`` (midpoint rule), in site order."""
    total: list[Tensor] | None = None
    for i in range(steps):
        shift = Add(site=_EMBED, direction=direction * ((i + 0.5) / steps))
        step = run_gradients(vlm, corrupt, sites, metric, config, base=(*base, shift))
        grads = [g.float() for g in step.grads]
        total = grads if total is None else [t + g for t, g in zip(total, grads, strict=True)]
    assert total is not None
    return [t / steps for t in total]


@dataclass(frozen=True, kw_only=True)
class Agreement:
    """How well attribution estimates rank cells as exact patching does.

    Attributes:
      spearman: rank correlation over the cells (with its two-sided p-value).
      spearman_p: its p-value.
      top_k_recall: share of exact patching's top-k cells (by |effect|) that attribution also
        puts in its top k.
      k: the k of the recall.
      n: number of cells.
    """

    spearman: float
    spearman_p: float
    top_k_recall: float
    k: int
    n: int


def agreement(estimates: ArrayLike, exact: ArrayLike, *, k: int = 10) -> Agreement:
    """Spearman correlation and top-k recall (by absolute effect) between attribution estimates
    and exact patching effects of the same cells.

    Raises:
      ConfigError: the inputs differ in length, hold non-finite values, have fewer than 3 cells,
        or `k` is not in 1..n.
    """
    a, b = np.asarray(estimates, dtype=float).ravel(), np.asarray(exact, dtype=float).ravel()
    if a.shape != b.shape or a.size < 3 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError(
            f"agreement needs two finite vectors of one length >= 3; got {a.size} and {b.size} "
            "values. Pass the estimate and the exact effect of each cell."
        )
    if not 1 <= k <= a.size:
        raise ConfigError(f"agreement: k must lie in 1..{a.size}; got {k}.")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ConfigError(
            "agreement: a rank correlation needs values that vary; "
            f"{'the estimates' if np.ptp(a) == 0 else 'the exact effects'} are all equal. Pass "
            "cells where patching has an effect."
        )
    rho = stats.spearmanr(a, b)
    top_exact = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    top_estimate = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    return Agreement(spearman=float(rho.statistic), spearman_p=float(rho.pvalue),
                     top_k_recall=len(top_exact & top_estimate) / k, k=k, n=int(a.size))  # fmt: skip
