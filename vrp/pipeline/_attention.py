"""Answer-to-image attention maps of a batch, from one capture trace of the answer query rows."""

from collections.abc import Sequence

import torch

from ..core import Component, LastToken, Site
from ..interventions import Capture, Graph, run_graph
from ..models import VLM, VlmInputs
from ..signals import AttentionMaps, average_heads, image_attention


def answer_attention(
    vlm: VLM, inputs: VlmInputs, *, layers: Sequence[int] | None = None
) -> AttentionMaps:
    """Attention from the answer position to the image tokens on the patch grid, averaged over
    heads, per layer (m^(l)) and over layers (M).

    Raises:
      GraphError: the model does not run eager attention (patterns need it).
    """
    chosen = tuple(layers if layers is not None else range(vlm.adapter.n_layers))
    nodes = tuple(
        Capture(site=Site(layer=i, component=Component.ATTN_PATTERN, positions=LastToken()),
                name=f"pattern{i}")
        for i in chosen
    )  # fmt: skip
    result = run_graph(vlm, Graph(nodes=nodes), inputs)
    queries = torch.zeros(inputs.batch_size, dtype=torch.long)
    patterns = [result[f"pattern{i}"] for i in chosen]
    head_maps = image_attention(patterns, inputs.image_mask, queries, inputs.grids[0])
    return average_heads(head_maps, layers=chosen)
