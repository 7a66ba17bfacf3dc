"""One capture graph per batch: everything the reliability signals need, in a single trace.

Two runs share the trace: the real image ("image") and a blank grey image with the same question
("blank", for the visual-attribution margin). Per language layer, at the answer position: the
residual stream, the attention and MLP outputs, the per-head outputs and the attention pattern of
the answer query.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from PIL import Image
from torch import Tensor

from ..core import Component, LastToken, Site
from ..interventions import Capture, Graph, run_graph
from ..models import VLM, VlmInputs

_PER_LAYER = {
    "resid": Component.RESID_POST,
    "attn": Component.ATTN_OUT,
    "mlp": Component.MLP_OUT,
    "heads": Component.HEAD_OUT,
    "pattern": Component.ATTN_PATTERN,
}


@dataclass(frozen=True, kw_only=True)
class BatchCapture:
    """What one trace gathered for a batch, stacked over layers (answer position only)."""

    inputs: VlmInputs
    layers: tuple[int, ...]
    logits: Float[Tensor, "batch vocab"]  # answer-position logits, real image
    resid: Float[Tensor, "batch layer d_model"]
    blank_resid: Float[Tensor, "batch layer d_model"]
    attn: Float[Tensor, "batch layer d_model"]
    mlp: Float[Tensor, "batch layer d_model"]
    heads: Float[Tensor, "batch layer head d_head"]
    patterns: tuple[Float[Tensor, "batch head 1 key"], ...]  # answer query row, one per layer
    image_mask: Bool[Tensor, "batch key"]


def _site(layer: int, component: Component) -> Site:
    return Site(layer=layer, component=component, positions=LastToken())


def capture_graph(layers: tuple[int, ...]) -> Graph:
    """The graph of captures behind `capture_batch`."""
    nodes = [
        Capture(site=_site(layer, component), name=f"{key}{layer}", run="image")
        for layer in layers
        for key, component in _PER_LAYER.items()
    ]
    nodes += [Capture(site=_site(layer, Component.RESID_POST), name=f"blank{layer}", run="blank")
              for layer in layers]  # fmt: skip
    return Graph(nodes=tuple(nodes), runs=("image", "blank"))


def blank_like(image: Image.Image, grey: int = 128) -> Image.Image:
    """A uniform grey image of the same size (the visual-attribution baseline)."""
    return Image.new("RGB", image.size, (grey, grey, grey))


def capture_batch(
    vlm: VLM,
    images: list[Image.Image],
    questions: list[str],
    *,
    layers: tuple[int, ...],
    grey: int = 128,
) -> BatchCapture:
    """Runs the capture graph on one batch and stacks the captures per layer."""
    inputs = vlm.encode(images, questions)
    blank = vlm.encode([blank_like(i, grey) for i in images], questions)
    result = run_graph(vlm, capture_graph(layers), {"image": inputs, "blank": blank})

    def stack(key: str) -> Tensor:
        return torch.stack([result[f"{key}{layer}"][:, 0] for layer in layers], dim=1)

    return BatchCapture(
        inputs=inputs,
        layers=layers,
        logits=result.answer_logits["image"],
        resid=stack("resid"),
        blank_resid=stack("blank"),
        attn=stack("attn"),
        mlp=stack("mlp"),
        heads=stack("heads"),
        patterns=tuple(result[f"pattern{layer}"] for layer in layers),
        image_mask=inputs.image_mask,
    )
