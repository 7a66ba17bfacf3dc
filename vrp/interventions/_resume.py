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
"""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import Component, GraphError, Tower
from ..models import VLM, VlmInputs
from ._graph import Graph
from ._nodes import AttentionKnockout, Node


@dataclass(frozen=True, kw_only=True, eq=False)
class Resume:
    """Start the language model at `layer`, with the residual stream entering it given.

    Attributes:
      layer: the first language layer run, 1 .. n_layers (n_layers runs only the final norm and
        the unembedding).
      hidden: the residual stream entering `layer` (`Component.RESID_PRE` of `layer`, or
        `RESID_POST` of `layer - 1`) for the rows of one run, ``(batch, seq, d_model)``,
        captured from a run of the same inputs; every run of the graph starts from it.
    """

    layer: int
    hidden: Float[Tensor, "batch seq d_model"]


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
    _check_same_inputs(runs)
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


def _check_same_inputs(runs: Mapping[str, VlmInputs]) -> None:
    items = list(runs.items())
    name, first = items[0]
    for other, inputs in items[1:]:
        same = (
            inputs.batch_size == first.batch_size
            and inputs.seq_len == first.seq_len
            and torch.equal(inputs.input_ids.cpu(), first.input_ids.cpu())
            and torch.equal(inputs.attention_mask.cpu(), first.attention_mask.cpu())
        )
        if not same:
            raise GraphError(
                f"resume shares one residual stream between runs, so every run must encode the "
                f"same inputs; runs {name!r} and {other!r} differ. Resume a graph whose runs all "
                "read one batch (patch from stored values with Assign)."
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
    from ..core import Site

    assert isinstance(site, Site)
    if site.tower is not Tower.LANGUAGE:
        return True  # a resumed trace does not run the vision tower (only layer 0 reads it)
    if site.component is Component.RESID_POST and site.layer == layer - 1:
        return False
    return site.layer < layer


def _describe(node: Node) -> str:
    describe = getattr(node, "describe", None)
    return describe() if callable(describe) else f"{node.kind} node"
