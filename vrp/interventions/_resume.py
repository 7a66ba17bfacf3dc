"""Resuming the language model at a layer: the shared computation below it is done once.

A sweep runs many copies of the same inputs, each with one intervention at some layer `l`. Below
`l` every copy computes the same thing, so `run_graph(..., resume=Resume(layer=l, hidden=h))`
does not run the language layers below `l` at all (nnsight skips them) and feeds `h`, the
residual stream entering layer `l` captured once from a run of the same inputs, to layer `l` for
every run. The result equals running every layer, for any family (a layer's output depends only
on earlier layers, causal or not), as long as no node acts below `l`, which `check_resume`
enforces. Only layer 0 reads the vision tower's output, so a resumed trace does not send the image
pixels at all (`Adapter.resumed_inputs`): the vision tower does not run either, and nodes on it
are refused like nodes below the layer.

On families whose prompt attends causally (`Adapter.causal_prompt`: LLaVA, Qwen2-VL, not
PaliGemma's bidirectional prefix) a run can also resume at a position `start`: the positions
before it are not recomputed at any layer either; the run layers attend to their keys and values
cached from the same run of the inputs. `resume_state` takes everything once (the stream entering
every layer, the cache, the position ids, the answer logits) and `ResumeState.at(layer, start)`
gives the `Resume`. Nodes must then act at positions >= `start` only (a cached position cannot
change), attention patterns and knockouts are refused (their queries would meet cached keys),
and the run stays on this machine (a cache does not travel to a server).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import Component, GraphError, Site, Tower
from ..models import VLM, VlmInputs
from ..models._resume import tiled_cache
from ._graph import Graph
from ._nodes import AttentionKnockout, ImagePatchMask, Node, Patch


@dataclass(frozen=True, kw_only=True, eq=False)
class Resume:
    """Start the language model at `layer`, with the residual stream entering it given.

    Attributes:
      layer: the first language layer run, 1 .. n_layers (n_layers runs only the final norm and
        the unembedding).
      hidden: the residual stream entering `layer` (`Component.RESID_PRE` of `layer`, or
        `RESID_POST` of `layer - 1`) for the rows of one run, ``(batch, seq, d_model)``,
        captured from a run of the same inputs; every run of the graph starts from it.
      start: the first position run (0: every position); > 0 needs `past`.
      past: the cached keys and values of the positions before `start` (a `DynamicCache`).
      position_ids: the position ids the language model received, when the family passes
        explicit ones (Qwen2-VL's M-RoPE ids).
      source: the inputs `hidden` and `past` were computed from (set by `ResumeState.at`):
        every run must encode exactly these.
    """

    layer: int
    hidden: Float[Tensor, "batch seq d_model"]
    start: int = 0
    past: Any = None
    position_ids: Tensor | None = None
    source: VlmInputs | None = None


def check_resume(vlm: VLM, graph: Graph, runs: Mapping[str, VlmInputs], resume: object) -> None:
    """Raises `GraphError` unless `resume` can stand in for the layers below it for every run.

    Every run must encode the same inputs (the shared stream is theirs), `hidden` must have one
    run's shape, and no node may act below the resumed layer: the only place below it a node may
    touch is `RESID_POST` of `layer - 1`, which is the resumed stream itself.
    """
    if not isinstance(resume, Resume):
        raise GraphError(f"resume must be a vrp.interventions.Resume or None; got {resume!r:.80}.")
    n_layers = vlm.adapter.n_layers
    if (
        isinstance(resume.layer, bool)
        or not isinstance(resume.layer, int)
        or not (1 <= resume.layer <= n_layers)
    ):
        raise GraphError(
            f"resume.layer must be a language layer in 1..{n_layers} (layer 0 needs no resume); "
            f"got {resume.layer!r}."
        )
    _check_same_inputs(runs, resume.source)
    first = next(iter(runs.values()))
    width = vlm.adapter.shape(Tower.LANGUAGE).d_model
    wanted = (first.batch_size, first.seq_len, width)
    hidden = resume.hidden
    if not isinstance(hidden, Tensor) or tuple(hidden.shape) != wanted:
        shape = tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__
        raise GraphError(
            f"resume.hidden must be the residual stream entering layer {resume.layer} for one "
            f"run's rows, shape {wanted} (batch, seq, d_model); got {shape}. Capture "
            f"RESID_PRE of layer {resume.layer} from a run of the same inputs."
        )
    for node in graph.nodes:
        _check_node(node, resume.layer)
    if resume.start:
        _check_start(vlm, graph, runs, resume)


def _check_start(vlm: VLM, graph: Graph, runs: Mapping[str, VlmInputs], resume: Resume) -> None:
    """A run resumed at a position: causal family, a cache, nodes at later positions only."""
    first = next(iter(runs.values()))
    if (
        isinstance(resume.start, bool)
        or not isinstance(resume.start, int)
        or not (0 < resume.start < first.seq_len)
    ):
        raise GraphError(
            f"resume.start must be a position in 0..{first.seq_len - 1}; got {resume.start!r}."
        )
    if not vlm.adapter.causal_prompt:
        raise GraphError(
            f"{vlm.family}'s prompt attends bidirectionally, so the positions before "
            f"resume.start={resume.start} depend on later ones and cannot be cached; resume at "
            "start=0 (layers are still skipped)."
        )
    if resume.past is None:
        raise GraphError(
            "resume.start > 0 needs resume.past, the keys and values of the earlier positions: "
            "take the Resume from vrp.interventions.resume_state(vlm, inputs).at(layer, start)."
        )
    for node in graph.nodes:
        kind = getattr(getattr(node, "site", None), "component", None)
        if isinstance(node, AttentionKnockout | ImagePatchMask) or kind is Component.ATTN_PATTERN:
            raise GraphError(
                f"{_describe(node)}: attention patterns and knockouts are not available in a run "
                "resumed at a position (its queries attend to cached keys); resume at start=0."
            )
        reads = [(node.run, site) for site in node.sites]
        if isinstance(node, Patch):  # the source's positions must be computed too
            reads.append((node.source, node.source_site))
        for name, site in reads:
            run = runs[name]
            chosen = site.positions.resolve_cached(run.image_mask, run.attention_mask)
            if bool(chosen[:, : resume.start].any()):
                raise GraphError(
                    f"{_describe(node)} selects positions before resume.start={resume.start}, "
                    "which are cached and cannot change; resume at or before the first position "
                    "a node selects."
                )


def _check_same_inputs(runs: Mapping[str, VlmInputs], source: VlmInputs | None) -> None:
    items = list(runs.items())
    name, first = items[0]
    for other, inputs in [*items[1:], *([("the resumed inputs", source)] if source else [])]:
        if not _same(first, inputs):
            raise GraphError(
                f"resume shares one residual stream between runs, so every run must encode the "
                f"same inputs as the stream's (token ids, masks and pixels); {name!r} and "
                f"{other!r} differ. Resume a graph whose runs all read one batch (patch from a "
                "stored value with Assign)."
            )


def _same(a: VlmInputs, b: VlmInputs) -> bool:
    """Whether two encodings hold the same tensors (token ids, masks, pixels, grids)."""
    if a is b:
        return True
    if set(a.data) != set(b.data):
        return False
    return all(
        torch.is_tensor(v)
        and torch.is_tensor(b.data[k])
        and v.shape == b.data[k].shape
        and torch.equal(v.cpu(), b.data[k].cpu())
        for k, v in a.data.items()
    )


def _check_node(node: Node, layer: int) -> None:
    if isinstance(node, AttentionKnockout):
        below = node.layer < layer
    else:
        below = any(_below(site, layer) for site in node.sites)
    if below:
        raise GraphError(
            f"{_describe(node)} acts below the resumed layer {layer}, which is not run; nodes "
            f"of a graph resumed at layer {layer} must act on the language model at layer "
            f"{layer} or later (or at RESID_POST of layer {layer - 1}, the resumed stream "
            "itself), not on the vision tower."
        )


def _below(site: object, layer: int) -> bool:
    assert isinstance(site, Site)
    if site.tower is not Tower.LANGUAGE:
        return True  # a resumed trace does not run the vision tower (only layer 0 reads it)
    if site.component is Component.RESID_POST and site.layer == layer - 1:
        return False
    return site.layer < layer


def _describe(node: Node) -> str:
    describe = getattr(node, "describe", None)
    return describe() if callable(describe) else f"{node.kind} node"


def resumed_data(
    vlm: VLM, stacked: VlmInputs, resume: Resume, rows: range, n_runs: int
) -> dict[str, Any]:
    """The model inputs of a resumed chunk: no pixels; from `resume.start` on, with the cache and
    position ids of the chunk's rows repeated for every run."""
    if not resume.start:
        return vlm.adapter.resumed_inputs(stacked.data)
    positions = resume.position_ids
    if positions is not None and positions.shape[-2] > 1:  # a batch axis: the chunk's rows
        part = positions.narrow(-2, rows.start, rows.stop - rows.start)
        positions = torch.cat([part] * n_runs, dim=-2)
    positions = positions.to(vlm.device) if positions is not None else None
    past = tiled_cache(resume.past, rows, resume.start, n_runs, vlm.device)
    return vlm.adapter.resumed_inputs(stacked.data, start=resume.start, past=past,
                                      position_ids=positions)  # fmt: skip
