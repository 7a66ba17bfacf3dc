"""PaliGemma: a SigLIP tower, a linear projector, and a Gemma decoder.

Early fusion: the image tokens and the prompt form one prefix that attends bidirectionally; the
processor marks it with ``token_type_ids`` (0 = prefix), which the model turns into the prefix mask.
"""

from typing import Any, ClassVar

from torch import Tensor

from ._base import BaseAdapter, LayerPaths


class PaliGemmaAdapter(BaseAdapter):
    """Adapter for `PaliGemmaForConditionalGeneration`."""

    family: ClassVar[str] = "paligemma"
    image_placeholder: ClassVar[str] = "<image>"
    vision_paths: ClassVar[LayerPaths] = LayerPaths(
        attn="self_attn",
        head_proj="out_proj",
        mlp="mlp",
        neuron_proj="fc2",
        attn_returns_weights=True,
    )

    def _vision_layer(self, model: Any, layer: int) -> Any:
        return model.model.vision_tower.encoder.layers[layer]

    def prompt(self, question: str) -> str:
        # PaliGemma's task-prefix format; the processor adds <bos> after the image tokens and "\n"
        return f"<image>answer en {question}"

    def _grids(self, data: dict[str, Tensor]) -> tuple[tuple[int, int], ...]:
        vision = self.config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        return tuple((side, side) for _ in range(data["input_ids"].shape[0]))
