"""Answer-to-image attention maps on the patch grid, from captured answer-query pattern rows."""

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from ..core import Component, LastToken, Site
from ..interventions import Capture, Graph, run_graph
from ..models import VLM, VlmInputs
from ..signals import AttentionMaps, average_heads, image_attention


def maps_from_patterns(
    patterns: Sequence[Float[Tensor, "batch head 1 key"]], inputs: VlmInputs, layers: Sequence[int]
) -> tuple[Float[Tensor, "batch layer head grid_h grid_w"], AttentionMaps]:
    """Per-head maps and their head average (m^(l) and M) from the answer query's pattern rows."""
    queries = torch.zeros(inputs.batch_size, dtype=torch.long, device=inputs.image_mask.device)
    head_maps = image_attention(list(patterns), inputs.image_mask, queries, inputs.grids[0])
    return head_maps, average_heads(head_maps, layers=layers)


def answer_attention(
    vlm: VLM, inputs: VlmInputs, *, layers: Sequence[int] | None = None
) -> AttentionMaps:
    """Attention from the answer position to the image tokens on the patch grid, averaged over
    heads, per layer (m^(l)) and over layers (M), from one capture trace.

    Raises:
      GraphError: a layer does not exist.
    """
    chosen = tuple(layers if layers is not None else range(vlm.adapter.n_layers))
    nodes = tuple(
        Capture(site=Site(layer=i, component=Component.ATTN_PATTERN, positions=LastToken()),
                name=f"pattern{i}")
        for i in chosen
    )  # fmt: skip
    result = run_graph(vlm, Graph(nodes=nodes), inputs)
    return maps_from_patterns([result[f"pattern{i}"] for i in chosen], inputs, chosen)[1]
